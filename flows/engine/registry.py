"""Step kinds: the names a recipe's ``uses:`` may pick, each bound to a config model and a function.

Each stage declares its kinds in a light module (``components/<stage>/kinds.py``) that
imports nothing heavy, so validating a recipe never imports torch, Ray or vLLM.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel

# One line per stage; each module exposes ``KINDS: list[StepKind]``.
KIND_MODULES = [
    "flows.demo_kinds",
    "components.data.kinds", "components.tokenize.kinds",
    "components.eval.kinds",
    "components.rag.kinds",
    "components.train.kinds",
    "components.tune.kinds",
    "components.sft.kinds", "components.rl.kinds", "components.distill.kinds",
    "serve.kinds",
    "serve.stack_kinds",
]


# Traits: facts about an artifact that recipe validation follows along the graph, so a recipe
# cannot feed a step what it must not read. Each trait's meaning, for error messages.
PII_SCRUBBED = "pii_scrubbed"
TRAITS = {PII_SCRUBBED: "PII-scrubbed documents (e-mails, phone numbers, IBANs, card numbers and public IPs "
                        "replaced by placeholders)"}


@dataclass(frozen=True)
class StepKind:
    """A step a recipe can use.

    ``config`` and ``run`` are ``"module:attr"`` strings imported lazily.
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
    config: str
    run: str
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

    def config_model(self) -> type[BaseModel]:
        return _load(self.config)

    def run_fn(self) -> Callable[..., Any]:
        return _load(self.run)


def _load(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


_registered: dict[str, StepKind] = {}


def register(kind: StepKind) -> StepKind:
    """Add a kind from outside llmflow (a user's own step); names must be unique."""
    if kind.name in _registered or kind.name in _builtin():
        raise ValueError(f"step kind {kind.name!r} is already registered")
    _registered[kind.name] = kind
    return kind


def kinds() -> dict[str, StepKind]:
    return {**_builtin(), **_registered}


@cache
def _builtin() -> dict[str, StepKind]:
    found: dict[str, StepKind] = {}
    for module in KIND_MODULES:
        for kind in importlib.import_module(module).KINDS:
            if kind.name in found:
                raise RuntimeError(f"step kind {kind.name!r} is declared twice (second time in {module})")
            found[kind.name] = kind
    return found


def get(name: str) -> StepKind:
    table = kinds()
    if name not in table:
        raise KeyError(f"unknown step kind {name!r}; known kinds: {', '.join(sorted(table))}")
    return table[name]
