"""Every step kind, one parametrized test: a kind is one decorated function in a discovered step
module, with a described strict config, well-formed inputs and traits, a code version, and a
module light enough that validating a recipe never imports torch, Ray or vLLM."""
from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import Field

from flows.engine import code_version as cv
from flows.engine import registry
from flows.engine.config import Config
from flows.engine.registry import StepKind, step_kind

REPO = Path(__file__).resolve().parents[2]
# Frameworks a step imports inside its function, never at module level (numpy is not listed:
# it is cheap, and configs such as DriftConfig live next to numpy code).
HEAVY = ("torch", "ray", "vllm", "transformers", "tokenizers", "peft", "pyarrow", "mlflow", "qdrant_client",
         "openai", "httpx", "sentence_transformers", "datasets", "pandas", "scipy")
BUILTIN = sorted(n for n, k in registry.kinds().items() if k.run.__module__ in registry.step_modules())


@pytest.fixture(scope="module")
def heavy_by_module() -> dict[str, list[str]]:
    """In a fresh interpreter: the heavy modules each step module brought in (in discovery order),
    then those that validating every shipped recipe, then computing every code version, brought in."""
    code = (
        "import importlib, json, sys\n"
        "from flows.engine import code_version, registry\n"
        f"heavy = {HEAVY!r}\n"
        "seen, out = set(), {}\n"
        "for m in registry.step_modules() + ['<recipes>', '<code versions>']:\n"
        "    if m == '<recipes>':\n"
        "        from flows.recipe import load_recipe, shipped_recipes\n"
        "        [load_recipe(r) for r in shipped_recipes()]\n"
        "    elif m == '<code versions>':\n"
        "        [code_version.kind_modules(k.modules, k.code) for k in registry.kinds().values()]\n"
        "    else:\n"
        "        importlib.import_module(m)\n"
        "    now = {h for h in heavy if h in sys.modules}\n"
        "    out[m] = sorted(now - seen)\n"
        "    seen |= now\n"
        "print(json.dumps(out))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout)


def test_there_are_kinds_in_every_stage():
    stages = {n.split(".")[0] for n in BUILTIN}
    assert {"demo", "data", "tokenize", "train", "tune", "sft", "rl", "distill", "rag", "eval", "serve"} <= stages


@pytest.mark.parametrize("name", BUILTIN)
def test_kind(name, heavy_by_module):
    kind = registry.get(name)
    module = kind.run.__module__

    # Named after its stage, so `uses: data.clean` says where to look; described for `llmflow recipes --kinds`.
    assert re.fullmatch(r"[a-z]+\.[a-z_]+", name), name
    assert name.split(".")[0] in module, f"{name} is defined in {module}, not in its stage"
    assert kind.description.strip(), f"{name} has no description"

    # The runner calls run(ctx, config); the config is strict, described and has tiny-CPU defaults.
    params = list(inspect.signature(kind.run).parameters.values())
    assert [p.name for p in params[:2]] == ["ctx", "config"], f"{kind.where} must take (ctx, config)"
    assert all(p.default is not p.empty for p in params[2:]), f"{kind.where}: extra parameters need defaults"
    assert issubclass(kind.config, Config) and kind.config.model_config.get("extra") == "forbid", name
    for field_name, field in kind.config.model_fields.items():
        assert field.description, f"{name}: {kind.config.__name__}.{field_name} has no description"
    kind.config()

    # Inputs are plain names, optional ones end in '?'; traits refer to inputs the kind has.
    assert all(re.fullmatch(r"[a-z_]+\??", i) for i in kind.inputs), kind.inputs
    assert len(kind.all_inputs) == len(kind.inputs), f"{name} lists an input twice"
    for inp, trait in kind.requires_traits:
        assert inp in kind.all_inputs and trait in registry.TRAITS, (inp, trait)
    assert set(kind.passes_traits_from) <= kind.all_inputs
    assert kind.num_cpus >= 0 and kind.num_gpus >= 0
    assert all(re.fullmatch(r"[a-z0-9_.]+", e) for e in kind.effects), kind.effects

    # The code version hashes the kind's own module and what it imports, never the engine.
    modules = cv.kind_modules(kind.modules, kind.code)
    assert module in modules and kind.config.__module__ in modules
    assert not any(m.startswith("flows.engine") for m in modules)

    assert heavy_by_module[module] == [], f"importing {module} imports {heavy_by_module[module]}: move it into the function"


def test_validating_recipes_and_computing_code_versions_import_nothing_heavy(heavy_by_module):
    assert heavy_by_module["<recipes>"] == [] and heavy_by_module["<code versions>"] == []


def test_every_decorated_function_is_in_a_discovered_module():
    """A @step_kind outside the STEP_MODULES globs would exist only when something happened to import it."""
    discovered = set(registry.step_modules())
    for package in cv.PROJECT_PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if "@step_kind(" in path.read_text() and path.name != "registry.py":
                module = ".".join(path.relative_to(REPO).with_suffix("").parts)
                assert module in discovered, f"{module} defines kinds but does not match registry.STEP_MODULES"


class _Cfg(Config):
    n: int = Field(1, description="A number.")


@pytest.fixture
def scratch_registry(monkeypatch):
    """Kinds a test adds vanish with it."""
    monkeypatch.setattr(registry, "_kinds", dict(registry.kinds()))


def test_the_config_comes_from_the_annotation(scratch_registry):
    @step_kind("test.annotated", inputs=("docs",), description="d")
    def run(ctx, config: _Cfg) -> dict[str, float]:
        return {}

    kind = registry.get("test.annotated")
    assert kind.run is run and kind.config is _Cfg and kind.required_inputs == {"docs"}


def _unannotated(ctx, config): ...
def _not_pydantic(ctx, config: dict): ...
def _no_config(ctx, cfg: _Cfg): ...
def _unresolvable(ctx, config: NoSuchConfig): ...  # noqa: F821


@pytest.mark.parametrize("fn, why", [(_unannotated, "no annotation on `config`"),
                                     (_not_pydantic, "not a pydantic model"),
                                     (_no_config, "no `config` parameter"),
                                     (_unresolvable, "NoSuchConfig")])
def test_a_missing_or_wrong_annotation_names_the_function_and_the_fix(scratch_registry, fn, why):
    with pytest.raises(TypeError) as e:
        step_kind("test.bad", description="d")(fn)
    assert why in str(e.value) and f"'test.bad': tests.flows.test_kinds.{fn.__name__}" in str(e.value)
    assert "def " + fn.__name__ + "(ctx, config: MyConfig)" in str(e.value)
    assert "test.bad" not in registry.kinds()


def test_duplicate_names_raise_naming_both(scratch_registry):
    def run(ctx, config: _Cfg) -> dict[str, float]:
        return {}

    with pytest.raises(ValueError, match=r"'demo.corpus' is declared twice: by flows.demo_steps.corpus and by"):
        step_kind("demo.corpus", description="d")(run)
    with pytest.raises(ValueError, match="declared twice"):
        registry.register(StepKind(name="data.clean", run=run, config=_Cfg, description="d"))
    step_kind("test.once", description="d")(run)
    step_kind("test.once", description="d")(run)  # the same function again (a re-imported module) is fine


def test_register_adds_a_kind_built_by_hand(scratch_registry):
    def run(ctx, config: _Cfg) -> dict[str, float]:
        return {}

    registry.register(StepKind(name="test.by_hand", run=run, config=_Cfg, description="d"))
    assert registry.get("test.by_hand").config is _Cfg
    with pytest.raises(TypeError, match="pydantic model class"):
        registry.register(StepKind(name="test.not_a_model", run=run, config=dict, description="d"))


def test_unknown_kind_lists_the_known_ones():
    with pytest.raises(KeyError, match="known kinds: .*data.clean"):
        registry.get("data.cleen")

