"""Step kinds used only by the engine tests: cheap, observable, and able to fail on demand."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pydantic import Field

from components.config import Config
from flows.engine import registry
from flows.engine.context import StepContext
from flows.engine.registry import StepKind


class EmitConfig(Config):
    value: int = Field(default=1, description="The number this step writes.")


class AddConfig(Config):
    offset: int = Field(default=0, description="Added to the sum of the inputs.")
    fail_flag: str = Field(default="", description="If this file exists, fail (and delete it: fail once).")
    sleep_s: float = Field(default=0.0, description="Sleep while holding a half-written artifact.")
    num_metrics: int = Field(default=0, description="Log this many metric points, one per 0.2 s.")


def emit(ctx: StepContext, config: EmitConfig) -> dict[str, float]:
    (ctx.output / "value.json").write_text(json.dumps({"value": config.value}))
    _count_call(ctx)
    return {"value": config.value}


def add(ctx: StepContext, config: AddConfig) -> dict[str, float]:
    _count_call(ctx)
    total = config.offset + sum(json.loads((p / "value.json").read_text())["value"] for p in ctx.inputs.values())
    (ctx.output / "partial.txt").write_text("half-written")
    for i in range(config.num_metrics):
        ctx.log_metrics({"series": float(i)}, step=i)
        time.sleep(0.2)
    if config.sleep_s:
        (_root(ctx) / "signal").write_text(str(os.getpid()))
        time.sleep(config.sleep_s)
    if config.fail_flag and os.path.exists(config.fail_flag):
        os.remove(config.fail_flag)
        raise RuntimeError("planned failure")
    (ctx.output / "value.json").write_text(json.dumps({"value": total}))
    return {"value": total}


def _root(ctx: StepContext) -> Path:
    # ctx.output is <artifact root>/.tmp/<dir>: test files go beside the artifacts, since Ray
    # workers outlive any one test's environment variables.
    return ctx.output.parents[1]


def _count_call(ctx: StepContext) -> None:
    with open(_root(ctx) / "calls.log", "a") as f:
        f.write(ctx.name + "\n")


class LearnConfig(Config):
    loss: float = Field(default=1.0, description="The 'trained' loss this step reports.")
    baseline: float = Field(default=2.0, description="The loss of its baseline.")
    min_margin: float = Field(default=0.5, description="The gain that counts as an effect.")


def learn(ctx: StepContext, config: LearnConfig) -> dict[str, float]:
    (ctx.output / "value.json").write_text(json.dumps({"value": config.loss}))
    ctx.report_effect("loss", config.loss, config.baseline, higher_is_better=False, min_margin=config.min_margin,
                      baseline_name="baseline")
    return {"loss": config.loss}


KINDS = [
    StepKind(name="test.emit", config=EmitConfig, run=emit, description="writes a number"),
    StepKind(name="test.learn", config=LearnConfig, run=learn, effects=("loss",),
             description="reports a loss against a baseline"),
    StepKind(name="test.add", config=AddConfig, run=add, inputs=("a", "b?"), description="sums its inputs"),
]


def ensure_registered() -> None:
    for k in KINDS:
        if k.name not in registry.kinds():
            registry.register(k)
