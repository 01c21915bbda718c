"""Step kinds: the names a recipe's ``uses:`` may pick, each one function decorated where it is written::

    @step_kind("data.clean", inputs=("docs",), num_cpus=0, description="...")
    def run_clean(ctx, config: CleanConfig) -> dict[str, float]: ...

The config model is the annotation of the function's ``config`` parameter. Built-in kinds are
found by importing every module ``STEP_MODULES`` matches (a stage's ``steps.py``); those modules
stay light at import (torch, Ray, vLLM, transformers are imported inside the functions), so
validating a recipe never pays for them. A kind defined anywhere else (a user's own step)
registers when its module is imported, or with ``register(StepKind(...))``.
"""
from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

# Where built-in kinds live, as globs relative to the repository root: every matching module is
# imported once, and its @step_kind functions register themselves. A new stage needs only its
# components/<stage>/steps.py.
STEP_MODULES = ("flows/demo_steps.py", "components/*/steps.py", "serve/steps/*.py")
_REPO_ROOT = Path(__file__).resolve().parents[2]


# Traits: facts about an artifact that recipe validation follows along the graph, so a recipe
# cannot feed a step what it must not read. Each trait's meaning, for error messages.
PII_SCRUBBED = "pii_scrubbed"
TRAITS = {PII_SCRUBBED: "PII-scrubbed documents (e-mails, phone numbers, IBANs, card numbers and public IPs "
                        "replaced by placeholders)"}


@dataclass(frozen=True)
class StepKind:
    """A step a recipe can use: ``run(ctx, config)`` with ``config`` an instance of ``config``.

    ``inputs`` names the upstream artifacts the function reads (recipe ``needs:`` keys);
    names ending in ``?`` are optional. The code version of the artifact address is computed
    from the import closure of the run and config modules (``code_version.py``); ``code`` adds
    packages reached without an import statement (a file loaded by path or by name) — rarely needed.

    Traits (see ``TRAITS``): an output has a trait when its config's optional
    ``output_traits() -> set[str]`` names it, or when every input in ``passes_traits_from``
    that the step is given has it (a filter that only removes documents keeps them).
    ``requires_traits`` lists ``(input, trait)`` pairs that validation enforces.
    """

    name: str
    run: Callable[..., Any]
    config: type[BaseModel]
    inputs: tuple[str, ...] = ()
    description: str = ""
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    cacheable: bool = True
    # A resumable step gets the same temporary directory on every attempt, so a re-run after a
    # crash finds its checkpoints there (the artifact is still published only on success).
    resumable: bool = False
    # A long-lived step starts services that must outlive the flow's driver (a Serve app): the
    # runner then puts the flow on a persistent local Ray head instead of an in-process cluster.
    long_lived: bool = False
    code: tuple[str, ...] = field(default_factory=tuple)
    requires_traits: tuple[tuple[str, str], ...] = ()
    passes_traits_from: tuple[str, ...] = ()
    # Effects the step must show against its own baseline (StepContext.report_effect names);
    # the runner warns, or fails under the recipe's ``strict: true``, when one is missing or too small.
    effects: tuple[str, ...] = ()

    @property
    def required_inputs(self) -> set[str]:
        return {i for i in self.inputs if not i.endswith("?")}

    @property
    def all_inputs(self) -> set[str]:
        return {i.rstrip("?") for i in self.inputs}

    @property
    def modules(self) -> tuple[str, ...]:
        """The modules of the function and its config: the roots of the kind's code version."""
        return tuple(dict.fromkeys((self.run.__module__, self.config.__module__)))

    @property
    def where(self) -> str:
        return f"{self.run.__module__}.{self.run.__qualname__}"


F = TypeVar("F", bound=Callable[..., Any])


def step_kind(name: str, *, description: str, inputs: tuple[str, ...] = (), num_cpus: float = 1.0,
              num_gpus: float = 0.0, cacheable: bool = True, resumable: bool = False, long_lived: bool = False,
              code: tuple[str, ...] = (), requires_traits: tuple[tuple[str, str], ...] = (),
              passes_traits_from: tuple[str, ...] = (), effects: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Make ``fn(ctx, config: SomeConfig)`` the step kind ``name`` (see ``StepKind`` for the fields);
    returns ``fn`` unchanged."""

    def decorate(fn: F) -> F:
        _add(StepKind(name=name, run=fn, config=_config_model(name, fn), inputs=tuple(inputs),
                      description=description, num_cpus=num_cpus, num_gpus=num_gpus, cacheable=cacheable,
                      resumable=resumable, long_lived=long_lived, code=tuple(code),
                      requires_traits=tuple(requires_traits), passes_traits_from=tuple(passes_traits_from),
                      effects=tuple(effects)))
        return fn

    return decorate


def _config_model(name: str, fn: Callable[..., Any]) -> type[BaseModel]:
    where = f"{fn.__module__}.{fn.__qualname__}"
    fix = (f"write it as `def {fn.__name__}(ctx, config: MyConfig)`, MyConfig a pydantic model "
           f"(a flows.engine.config.Config) imported at the top of {fn.__module__}")
    try:
        hints = typing.get_type_hints(fn)
    except NameError as e:
        raise TypeError(f"step kind {name!r}: {where} has an annotation that does not resolve ({e}); {fix}") from None
    model = hints.get("config")
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model
    if "config" not in inspect.signature(fn).parameters:
        got = "no `config` parameter"
    elif model is None:
        got = "no annotation on `config`"
    else:
        got = f"`config: {model!r}`, which is not a pydantic model"
    raise TypeError(f"step kind {name!r}: {where} has {got}; {fix}")


_kinds: dict[str, StepKind] = {}
_discovered = False


def _add(kind: StepKind) -> None:
    old = _kinds.get(kind.name)
    if old is not None and old.where != kind.where:
        raise ValueError(f"step kind {kind.name!r} is declared twice: by {old.where} and by {kind.where}; "
                         "rename one of them")
    _kinds[kind.name] = kind  # same function again: its module was re-imported


def register(kind: StepKind) -> StepKind:
    """Add a kind built by hand (``@step_kind`` does this for a decorated function); names must be unique."""
    if not (isinstance(kind.config, type) and issubclass(kind.config, BaseModel)):
        raise TypeError(f"step kind {kind.name!r}: config must be a pydantic model class, got {kind.config!r}")
    _discover()
    _add(kind)
    return kind


def step_modules() -> list[str]:
    """The modules ``STEP_MODULES`` matches, in that order."""
    found: list[str] = []
    for pattern in STEP_MODULES:
        for path in sorted(_REPO_ROOT.glob(pattern)):
            found.append(".".join(path.relative_to(_REPO_ROOT).with_suffix("").parts))
    return found


def _discover() -> None:
    global _discovered
    if not _discovered:
        for module in step_modules():
            importlib.import_module(module)
        _discovered = True


def kinds() -> dict[str, StepKind]:
    _discover()
    return dict(_kinds)


def get(name: str) -> StepKind:
    table = kinds()
    if name not in table:
        raise KeyError(f"unknown step kind {name!r}; known kinds: {', '.join(sorted(table))}")
    return table[name]
