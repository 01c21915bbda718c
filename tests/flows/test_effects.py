"""A step's effect against its own baseline: the rule that decides "shown", and how a step reports it."""
from __future__ import annotations

import json
import math

from flows.engine.context import StepContext
from flows.engine.effects import Effect, problems


def test_lower_is_better_gain_must_exceed_the_margin():
    e = Effect("val_loss", value=5.6, baseline=6.4, higher_is_better=False, min_margin=0.5, baseline_name="unigram")
    assert math.isclose(e.gain, 0.8) and e.shown
    assert "unigram" in e.describe() and "✓" in e.describe()
    worse = Effect("val_loss", value=6.45, baseline=6.38, higher_is_better=False, min_margin=0.25)
    assert worse.gain < 0 and not worse.shown
    assert "needs gain > 0.25" in worse.describe()


def test_a_confidence_interval_that_touches_zero_is_no_effect():
    assert Effect("reward", 0.4, 0.2, True, ci_low=0.05, ci_high=0.35).shown
    assert not Effect("reward", 0.4, 0.2, True, ci_low=-0.01, ci_high=0.41).shown


def test_zero_against_zero_and_nan_are_no_effect():
    assert not Effect("reward", 0.0, 0.0, True).shown
    assert not Effect("loss", float("nan"), 6.0, False).shown


def test_problems_name_missing_and_too_small_effects():
    shown = Effect("acceptance_rate", 0.8, 0.6, True)
    flat = Effect("response_loss", 2.0, 2.0, False, min_margin=0.05)
    out = problems(("acceptance_rate", "response_loss", "reward"), [shown, flat])
    assert out[0] == "effect 'reward' was not measured"
    assert len(out) == 2 and out[1].startswith("no effect: response_loss")
    assert problems(("acceptance_rate",), [shown]) == []


def test_report_effect_logs_metrics_and_keeps_the_last_report(tmp_path):
    ctx = StepContext.for_test(tmp_path / "out")
    ctx.report_effect("val_loss", 6.0, 6.4, higher_is_better=False, min_margin=0.1, baseline_name="unigram")
    ctx.report_effect("val_loss", 5.5, 6.4, higher_is_better=False, min_margin=0.1, baseline_name="unigram")
    assert [e.value for e in ctx.effects] == [5.5]
    logged = [json.loads(line)["metrics"] for line in (tmp_path / "out" / "_metrics.jsonl").read_text().splitlines()]
    assert logged[-1]["effect.val_loss.gain"] == 6.4 - 5.5 and logged[-1]["effect.val_loss.shown"] == 1.0
    assert Effect(**ctx.effects[0].to_json()) == ctx.effects[0]  # the completion marker round-trips it
