"""Imports go one way: the engine depends on nothing above it, and a stage never imports a stage above it.

A static scan of every import statement (function-level ones included), so a lazy import that
would only run on some path still counts.
"""
from __future__ import annotations

from pathlib import Path

from flows.engine.code_version import import_statements

REPO = Path(__file__).resolve().parents[2]

# components/<stage>/ from the bottom up: a stage may import the stages before it. Top-level
# modules of components/ (config.py, artifacts.py) are the shared base every stage may import.
STAGE_ORDER = ["tracking", "data", "tokenize", "models", "train", "sft", "rl", "distill", "tune", "rag", "eval"]

# serve/<subsystem>/ from the bottom up, as for the stages; serve/errors.py is their shared base.
SERVE_ORDER = ["llm", "online_eval", "router"]

# Back-edges that exist today, named in issue 15 ("Components point back up"); remove a line
# when its edge is gone — the test then also fails if the edge comes back.
KNOWN_BACK_EDGES = {
    ("components/tracking/genai_eval.py", "eval"),  # MLflow GenAI scorers wrap eval's metrics
}


def _imports(path: Path, package: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import statement in a file; relative ones resolved."""
    package = package or ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    return import_statements(path, package)


def _py_files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def test_imports_scan_sees_function_level_and_relative_imports(tmp_path):
    f = tmp_path / "probe.py"
    f.write_text("def f():\n    from components.tracking import x\n    from ..recipe import y\n    import serve.llm.app\n")
    assert {m for _, m in _imports(f, package="flows.engine")} >= {"components.tracking", "flows.recipe",
                                                                   "serve.llm.app"}


def test_engine_imports_nothing_above_it():
    """Nothing under flows/engine imports components/ or serve/, directly or through other flows modules."""
    bad = []
    todo = [(p, p) for p in _py_files("flows/engine")]
    seen: set[Path] = set()
    while todo:
        path, origin = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for line, module in _imports(path):
            top = module.split(".")[0]
            if top in ("components", "serve"):
                via = "" if path == origin else f" (reached from {origin.relative_to(REPO)})"
                bad.append(f"{path.relative_to(REPO)}:{line} imports {module}{via}")
            elif top == "flows":
                # flows modules outside the engine that the engine imports (flows/recipe.py) count too
                parts = module.split(".")
                for i in range(len(parts), 0, -1):
                    cand = REPO.joinpath(*parts[:i])
                    for f in (cand.with_suffix(".py"), cand / "__init__.py"):
                        if f.is_file():
                            todo.append((f, origin))
                            break
                    else:
                        continue
                    break
    assert not bad, "the engine must not depend on the layers above it:\n" + "\n".join(sorted(set(bad)))


def test_stages_import_only_stages_below_them():
    rank = {stage: i for i, stage in enumerate(STAGE_ORDER)}
    stages = {p.name for p in (REPO / "components").iterdir() if (p / "__init__.py").is_file()}
    assert stages == set(STAGE_ORDER), f"place every stage in STAGE_ORDER: {sorted(stages ^ set(STAGE_ORDER))}"
    bad, used = [], set()
    for path in _py_files("components"):
        rel = path.relative_to(REPO)
        own = rel.parts[1] if len(rel.parts) > 2 else None
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[0] == "serve":
                bad.append(f"{rel}:{line} imports {module}: components never import serve/")
            if parts[0] != "components" or len(parts) < 2 or parts[1] not in rank or own is None:
                continue
            other = parts[1]
            if other != own and rank[other] > rank[own]:
                if (str(rel), other) in KNOWN_BACK_EDGES:
                    used.add((str(rel), other))
                    continue
                bad.append(f"{rel}:{line} imports {module}: stage {own!r} is below {other!r} "
                           f"(order: {' < '.join(STAGE_ORDER)})")
    assert not bad, "\n".join(sorted(set(bad)))
    assert used == KNOWN_BACK_EDGES, f"back-edges gone, remove them from KNOWN_BACK_EDGES: {KNOWN_BACK_EDGES - used}"


def test_serve_subsystems_import_only_subsystems_below_them():
    """A serve/ subsystem imports the shared errors module and the subsystems before it, never the flow steps."""
    rank = {name: i for i, name in enumerate(SERVE_ORDER)}
    subsystems = {p.name for p in (REPO / "serve").iterdir() if (p / "__init__.py").is_file()}
    assert subsystems >= set(SERVE_ORDER), f"missing serve subsystems: {sorted(set(SERVE_ORDER) - subsystems)}"
    bad = []
    for own in SERVE_ORDER:
        for path in _py_files(f"serve/{own}"):
            for line, module in _imports(path):
                parts = module.split(".")
                if parts[0] != "serve" or len(parts) < 2 or parts[1] == "errors":
                    continue
                if parts[1] not in rank or rank[parts[1]] > rank[own]:
                    bad.append(f"{path.relative_to(REPO)}:{line} imports {module} "
                               f"(order: {' < '.join(SERVE_ORDER)}, plus serve.errors)")
    assert not bad, "\n".join(sorted(set(bad)))


def test_no_import_cycles_inside_components():
    """Two modules that import each other (even lazily) cannot be read or tested one without the other."""
    graph: dict[str, set[str]] = {}
    for path in _py_files("components"):
        rel = path.relative_to(REPO).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        graph[name] = {m for _, m in _imports(path) if m.startswith("components.")}
    graph = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
    cycles, state = [], {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = "open"
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                cycles.append(" -> ".join([*stack[stack.index(d):], d]))
            elif d not in state:
                visit(d, [*stack, d])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
