"""Effects through the runner on real Ray: shown in the outcome and the completion marker, a warning
for a step that learned nothing, a failed step (and skipped downstream) under strict: true."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from flows.engine.runner import FlowRunner
from flows.engine.store import MARKER
from flows.recipe import parse_recipe
from tests.flows.kinds_for_tests import ensure_registered

pytestmark = pytest.mark.integration


def _recipe(loss: float, strict: bool) -> dict:
    ensure_registered()
    return {"name": "effects", "strict": strict, "ray": {"num_cpus": 2},
            "steps": {"learn": {"uses": "test.learn", "config": {"loss": loss}},
                      "after": {"uses": "test.add", "needs": {"a": "learn"}}}}


def _run(recipe: dict, workdir: Path):
    out = io.StringIO()
    runner = FlowRunner(parse_recipe(recipe), workdir=workdir, console=Console(file=out, width=200), tracking=False)
    return runner.run(), out.getvalue()


def test_an_effect_is_kept_in_the_marker_and_a_missing_one_warns(tmp_path, ray_local):
    result, out = _run(_recipe(loss=1.0, strict=False), tmp_path)
    learn = result.outcomes["learn"]
    assert learn.status == "done" and learn.effect_problems == []
    assert learn.effects[0]["name"] == "loss" and learn.effects[0]["baseline"] == 2.0
    assert json.loads((Path(learn.uri) / MARKER).read_text())["effects"] == learn.effects

    result, out = _run(_recipe(loss=1.9, strict=False), tmp_path)  # gain 0.1 < margin 0.5: warn, go on
    assert result.ok and result.outcomes["after"].status == "done"
    assert "learn (test.learn): no effect: loss 1.9 vs baseline 2: gain +0.1" in out


def test_strict_fails_the_step_that_learned_nothing_also_from_the_cache(tmp_path, ray_local):
    result, _ = _run(_recipe(loss=1.9, strict=True), tmp_path)
    learn = result.outcomes["learn"]
    assert learn.status == "failed" and "strict: true" in learn.error and "gain +0.1" in learn.error
    assert result.outcomes["after"].status == "skipped"
    # The artifact was committed; a re-run reads it from the cache and reaches the same verdict.
    result, _ = _run(_recipe(loss=1.9, strict=True), tmp_path)
    assert result.outcomes["learn"].status == "failed"
