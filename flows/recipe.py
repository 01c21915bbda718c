"""Recipes: YAML flow definitions, validated all at once.

A recipe names its steps; each step ``uses`` a registered kind, ``needs`` upstream steps
under the input names the kind expects, and carries a ``config`` validated by the kind's
pydantic model. ``load_recipe`` returns a ``Recipe`` or raises ``RecipeError`` listing
every problem (field path, bad value, why, how to fix) — never just the first.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from flows.engine import registry
from flows.engine.config import Config

RECIPES_DIR = Path(__file__).parent / "recipes"


class StepSpec(Config):
    uses: str = Field(description="Registered step kind to run, e.g. 'data.clean' (see `llmflow recipes --kinds`).")
    needs: dict[str, str] = Field(default_factory=dict,
                                  description="Input name -> upstream step whose artifact feeds it.")
    config: dict[str, Any] = Field(default_factory=dict, description="The kind's config; validated by its model.")
    num_cpus: float | None = Field(default=None, ge=0, description="Override the kind's Ray CPU request.")
    num_gpus: float | None = Field(default=None, ge=0, description="Override the kind's Ray GPU request.")


class RayConfig(Config):
    address: str | None = Field(default=None, description="Ray cluster address; None starts a local Ray "
                                "(RAY_ADDRESS or --address override it).")
    num_cpus: int = Field(default=4, ge=1, description="Logical CPUs of the local Ray. More than the physical "
                          "cores on purpose: Serve and driver-only steps need slots that do little work.")


class TrackingConfig(Config):
    experiment: str = Field(default="llmflow", description="MLflow experiment of the flow's runs.")
    tracking_uri: str | None = Field(default=None, description="MLflow tracking URI; None means "
                                     "MLFLOW_TRACKING_URI or a local sqlite store in the working dir.")
    tracker: str = Field(default="components.tracking.mlflow_tracking:flow_tracker",
                         description="The tracker factory, 'module:attr', called as attr(tracking_uri, experiment, "
                         "workdir); it returns a flows.engine.tracking.Tracker. The default records to MLflow.")


class RecipeModel(Config):
    name: str = Field(description="Flow name: the MLflow parent run's name and the state folder's.")
    description: str = Field(default="", description="What the flow does, for `llmflow recipes`.")
    artifact_root: str = Field(default=".llmflow/artifacts", description="Where artifacts live: a local "
                               "dir (relative to the working dir) or any fsspec URI (s3://…, gs://…).")
    ray: RayConfig = Field(default_factory=RayConfig, description="Where steps run.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="Where runs are tracked.")
    steps: dict[str, StepSpec] = Field(description="The flow's steps by name, in any order (a DAG by `needs`).")
    strict: bool = Field(default=False, description="Fail a step whose declared effect (its gain over its own "
                         "baseline, e.g. validation loss under the corpus's unigram entropy) is absent or too "
                         "small; false: print a warning and go on.")


@dataclass
class Problem:
    path: str
    value: Any
    why: str
    fix: str

    def __str__(self) -> str:
        v = repr(self.value)
        v = v if len(v) < 80 else v[:77] + "..."
        return f"{self.path}: {self.why} (got {v}). Fix: {self.fix}"


class RecipeError(ValueError):
    def __init__(self, source: str, problems: list[Problem]):
        self.source, self.problems = source, problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n{lines}")


@dataclass
class Recipe:
    model: RecipeModel
    configs: dict[str, BaseModel]   # step name -> validated kind config
    order: list[str]                # topological order
    source: str

    @property
    def name(self) -> str:
        return self.model.name

    def kind(self, step: str) -> registry.StepKind:
        return registry.get(self.model.steps[step].uses)

    def downstream(self, steps: set[str]) -> set[str]:
        out = set(steps)
        for name in self.order:
            if any(up in out for up in self.model.steps[name].needs.values()):
                out.add(name)
        return out


def _fix_for(err_type: str) -> str:
    return {
        "extra_forbidden": "remove it or check its spelling against the documented fields",
        "missing": "add this field",
        "int_parsing": "use an integer",
        "float_parsing": "use a number",
        "bool_parsing": "use true or false",
        "literal_error": "use one of the allowed values",
        "renamed_field": "use the new name the message gives (same meaning, same value)",
    }.get(err_type, "see the field's description (`llmflow recipes --kinds`)")


def _pydantic_problems(prefix: str, e: ValidationError) -> list[Problem]:
    out = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"])
        value = err.get("ctx", {}).get("old_keys") if err["type"] == "renamed_field" else err.get("input")
        out.append(Problem(f"{prefix}{loc}" if loc else prefix.rstrip("."), value, err["msg"], _fix_for(err["type"])))
    return out


def apply_overrides(raw: dict, overrides: list[str]) -> list[Problem]:
    """Apply ``a.b.c=value`` overrides in place (value parsed as YAML); returns problems."""
    problems = []
    for ov in overrides:
        key, sep, value = ov.partition("=")
        if not sep or not key:
            problems.append(Problem("--set", ov, "an override must look like key.path=value",
                                    "write e.g. --set steps.pretrain.config.num_steps=20"))
            continue
        parts = key.split(".")
        node = raw
        for i, part in enumerate(parts[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if child is None and isinstance(node, dict):
                child = node[part] = {}
            if not isinstance(child, dict):
                problems.append(Problem(f"--set {key}", value, f"{'.'.join(parts[:i + 1])} is not a mapping",
                                        "override a leaf field or a mapping"))
                break
            node = child
        else:
            node[parts[-1]] = yaml.safe_load(value) if value != "" else ""
    return problems


def parse_recipe(raw: Any, source: str = "<recipe>", overrides: list[str] | None = None) -> Recipe:
    if not isinstance(raw, dict):
        raise RecipeError(source, [Problem("<root>", raw, "a recipe must be a YAML mapping",
                                           "start from a recipe in flows/recipes/")])
    problems = apply_overrides(raw, overrides or [])
    try:
        model = RecipeModel.model_validate(raw)
    except ValidationError as e:
        problems += _pydantic_problems("", e)
        # Validate what we can of the steps too, so one run reports everything.
        steps = raw.get("steps") if isinstance(raw.get("steps"), dict) else {}
        model = None
    else:
        steps = model.steps
    configs: dict[str, BaseModel] = {}
    for name, spec in (steps or {}).items():
        if not isinstance(spec, StepSpec):
            try:
                spec = StepSpec.model_validate(spec)
            except ValidationError:
                continue  # already reported above
        prefix = f"steps.{name}"
        try:
            kind = registry.get(spec.uses)
        except KeyError as e:
            problems.append(Problem(f"{prefix}.uses", spec.uses, "unknown step kind",
                                    e.args[0].split("; ", 1)[-1]))
            continue
        try:
            configs[name] = kind.config.model_validate(spec.config)
        except ValidationError as e:
            problems += _pydantic_problems(f"{prefix}.config.", e)
        for inp, up in spec.needs.items():
            if inp not in kind.all_inputs:
                problems.append(Problem(f"{prefix}.needs.{inp}", up, f"{kind.name} takes no input {inp!r}",
                                        f"use one of {sorted(kind.all_inputs) or 'no inputs'}"))
            if up not in steps:
                problems.append(Problem(f"{prefix}.needs.{inp}", up, "no step of that name",
                                        f"name one of {sorted(steps)}"))
        for missing in sorted(kind.required_inputs - set(spec.needs)):
            problems.append(Problem(f"{prefix}.needs", dict(spec.needs), f"{kind.name} requires input {missing!r}",
                                    f"add `{missing}: <upstream step>` under needs"))
    order = _toposort(steps or {}, problems)
    problems += _trait_problems(steps or {}, configs, order)
    if problems:
        raise RecipeError(source, problems)
    assert model is not None
    return Recipe(model=model, configs=configs, order=order, source=source)


def _trait_problems(steps: dict, configs: dict[str, BaseModel], order: list[str]) -> list[Problem]:
    """Follow each artifact's traits (``registry.TRAITS``) down the graph; an input that lacks a
    trait its step requires is a problem naming the step where the trait was lost and the fix.

    A step whose config did not validate has unknown traits: nothing is claimed about its
    consumers (its own problem is already listed).
    """
    traits: dict[str, set[str] | None] = {}
    for name in order:
        spec, config = steps[name], configs.get(name)
        if not isinstance(spec, StepSpec) or config is None:
            traits[name] = None
            continue
        kind = registry.get(spec.uses)
        inherited = [traits.get(spec.needs[i]) for i in kind.passes_traits_from if i in spec.needs]
        if any(t is None for t in inherited):
            traits[name] = None
            continue
        own = config.output_traits() if hasattr(config, "output_traits") else set()
        traits[name] = set(own) | (set.intersection(*inherited) if inherited else set())

    def lost_at(step: str, trait: str) -> list[str]:
        """The chain from ``step`` up to the step whose own output lacks ``trait``."""
        spec = steps[step]
        for i in registry.get(spec.uses).passes_traits_from:
            up = spec.needs.get(i)
            if up is not None and trait not in (traits.get(up) or set()):
                return [step, *lost_at(up, trait)]
        return [step]

    problems = []
    for name in order:
        spec = steps[name]
        if not isinstance(spec, StepSpec) or spec.uses not in registry.kinds():
            continue  # already reported
        kind = registry.get(spec.uses)
        for inp, trait in kind.requires_traits:
            up = spec.needs.get(inp)
            if up is None or traits.get(up) is None or trait in traits[up]:
                continue
            chain = lost_at(up, trait)
            origin = chain[-1]
            via = f" (passed on through {' -> '.join(repr(s) for s in reversed(chain[:-1]))})" if len(chain) > 1 else ""
            fixes = getattr(configs[origin], "TRAIT_FIXES", {})
            fix = (fixes[trait].format(step=origin) if trait in fixes else
                   f"put a step whose output has {trait!r} between {origin!r} and {name!r}")
            problems.append(Problem(
                f"steps.{name}.needs.{inp}", up,
                f"{kind.name} reads only {registry.TRAITS.get(trait, trait)}, but step {origin!r} "
                f"({steps[origin].uses}) outputs documents without {trait!r}{via}", fix))
    return problems


def _toposort(steps: dict, problems: list[Problem]) -> list[str]:
    needs = {n: set((s.needs if isinstance(s, StepSpec) else (s or {}).get("needs", {}) or {}).values()) & set(steps)
             for n, s in steps.items()}
    order, done = [], set()
    while len(order) < len(needs):
        ready = sorted(n for n, ups in needs.items() if n not in done and ups <= done)
        if not ready:
            cyc = sorted(set(needs) - done)
            problems.append(Problem("steps", cyc, "the steps' needs form a cycle", "remove one of the needs"))
            return order
        order += ready
        done |= set(ready)
    return order


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    path = resolve_recipe_path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise RecipeError(str(path), [Problem("<file>", str(path), f"not valid YAML: {e}", "fix the YAML syntax")])
    return parse_recipe(raw, str(path), overrides)


def resolve_recipe_path(path: str | Path) -> Path:
    """A path, or the name of a shipped recipe (``e2e`` → flows/recipes/e2e.yaml)."""
    p = Path(path)
    if p.exists():
        return p
    shipped = RECIPES_DIR / f"{p.stem}.yaml"
    if shipped.exists() and p.parent == Path("."):
        return shipped
    raise RecipeError(str(path), [Problem("<file>", str(path), "no such recipe file",
                                          f"give a path or one of: {', '.join(shipped_recipes())}")])


def shipped_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
