"""The code version of a step kind: a hash of every project module its step can run.

Computed from the static import closure of the kind's run and config modules (every
``import`` / ``from … import`` in those files, function-level imports included, followed
through the project's own packages), so no hand-kept list of dependencies can drift: edit
a module a step imports, directly or through others, and exactly the kinds that reach it get
a new address. Modules outside the project (torch, ray, …) are pinned by the install, and
the engine itself is versioned by ``address.ENGINE_VERSION``.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
from functools import cache
from pathlib import Path

# Top-level packages whose source enters code versions; the engine is excluded on purpose.
PROJECT_PACKAGES = ("components", "serve", "flows")
EXCLUDED_PREFIXES = ("flows.engine",)


def _is_project(module: str, packages: tuple[str, ...]) -> bool:
    return module.split(".")[0] in packages and not module.startswith(EXCLUDED_PREFIXES)


@cache
def _source_file(module: str) -> Path | None:
    """The file of a project module, found on disk without running it: ``find_spec("a.b.c")``
    would import ``a.b`` — and ``from a.b import name`` makes us look up ``a.b.name`` — so
    computing a code version would execute step modules' heavy imports (torch, vLLM)."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)  # a top-level name: finds it without importing it
    except (ModuleNotFoundError, ValueError):
        return None
    if spec is None:
        return None
    if not spec.submodule_search_locations:  # a plain top-level module
        return Path(spec.origin) if not rest and spec.origin and spec.origin.endswith(".py") else None
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*rest)
    for candidate in (base / "__init__.py", base.with_suffix(".py")):  # a package wins, as in Python
        if candidate.is_file():
            return candidate
    return None


def import_statements(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, module) for every import statement of one file, function-level ones included;
    relative imports resolved against ``package``; ``from pkg import name`` also yields
    ``pkg.name``, which may be a submodule."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.append((node.lineno, prefix))
            found += [(node.lineno, f"{prefix}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def _imported_modules(module: str, path: Path) -> set[str]:
    """Modules named by the import statements of one file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return {name for _, name in import_statements(path, package)}


@cache
def import_closure(module: str, packages: tuple[str, ...] = PROJECT_PACKAGES) -> tuple[str, ...]:
    """Every module of ``packages`` reachable from ``module`` by imports (itself and parent packages included)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or not _is_project(name, packages):
            continue
        path = _source_file(name)
        if path is None:
            continue  # `from pkg import function`: the attribute is not a module
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # importing a.b.c runs a/__init__, a/b/__init__
        todo.extend(_imported_modules(name, path))
    return tuple(sorted(seen))


def modules_hash(modules: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for name in sorted(modules):
        h.update(name.encode())
        h.update(_source_file(name).read_bytes())
    return h.hexdigest()[:16]


def kind_modules(kind_roots: tuple[str, ...], extra_packages: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The project modules a kind depends on: the closure of its run and config modules
    (``StepKind.modules``), plus the closure of every module of any package it declares
    explicitly (for code reached without an import statement, e.g. a file loaded by path)."""
    roots = list(kind_roots)
    for package in extra_packages:
        spec = importlib.util.find_spec(package)
        roots.append(package)
        if spec is not None and spec.submodule_search_locations:
            base = Path(next(iter(spec.submodule_search_locations)))
            for f in sorted(base.rglob("*.py")):
                parts = f.relative_to(base).with_suffix("").parts
                parts = parts[:-1] if parts[-1] == "__init__" else parts
                roots.append(".".join((package, *parts)))
    modules: set[str] = set()
    for root in roots:
        modules.update(import_closure(root))
    return tuple(sorted(modules))
