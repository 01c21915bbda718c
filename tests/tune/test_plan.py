"""Sweep configs validate with actionable errors; plans follow D = C / 6N; the recipe validates."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from components.tune.config import ModelShape, SweepConfig
from components.tune.plan import plan_trials

VOCAB, SEQ = 512, 64


def test_isoflop_plan_follows_c_equals_6nd():
    config = SweepConfig(budgets_flops=[1e10, 2e10], min_trial_steps=1)
    trials, skipped = plan_trials(config, VOCAB, SEQ)
    assert not skipped and len(trials) == 2 * len(config.shapes)
    for t in trials:
        assert t.num_tokens == t.num_steps * config.batch_size * SEQ
        # Whole steps: within half a step of C / 6N.
        assert abs(t.num_tokens - t.budget_flops / (6 * t.num_params)) <= config.batch_size * SEQ / 2
    by_budget = {}
    for t in trials:
        by_budget.setdefault(t.budget_flops, []).append(t.num_params)
    assert all(len(set(ns)) == len(config.shapes) for ns in by_budget.values())


def test_non_embedding_count_is_smaller_and_optional():
    base = plan_trials(SweepConfig(min_trial_steps=1), VOCAB, SEQ)[0]
    with_emb = plan_trials(SweepConfig(min_trial_steps=1, count_embedding_params=True), VOCAB, SEQ)[0]
    for a, b in zip(base, with_emb):
        assert b.num_params - a.num_params == 2 * VOCAB * a.width  # untied embedding + LM head


def test_points_outside_step_limits_are_skipped_with_reason():
    config = SweepConfig(budgets_flops=[1e10, 2e10], min_trial_steps=100, max_trial_steps=400)
    trials, skipped = plan_trials(config, VOCAB, SEQ)
    assert all(100 <= t.num_steps <= 400 for t in trials)
    assert skipped and all("outside [min_trial_steps=100, max_trial_steps=400]" in s for s in skipped)
    with pytest.raises(ValueError, match="no trial of sweep"):
        plan_trials(SweepConfig(min_trial_steps=4000, max_trial_steps=5000), VOCAB, SEQ)


def test_grid_plan_is_shapes_times_tokens():
    config = SweepConfig(mode="grid", tokens_grid=[1e5, 2e5], min_trial_steps=1)
    trials, _ = plan_trials(config, VOCAB, SEQ)
    assert len(trials) == 2 * len(config.shapes)
    assert all(t.budget_flops is None for t in trials)
    assert sorted({t.num_steps for t in trials}) == [round(1e5 / 512), round(2e5 / 512)]


@pytest.mark.parametrize("kwargs, message", [
    ({"budgets_flops": [1e10]}, "budgets_flops"),
    ({"mode": "grid", "tokens_grid": [1e5]}, "tokens_grid"),
    ({"min_trial_steps": 10, "max_trial_steps": 5}, "min_trial_steps"),
    ({"shapes": [ModelShape(depth=1, width=32)] * 3}, "lists the same"),
    ({"shapes": [ModelShape(depth=1, width=32)]}, "shapes"),
    ({"budgets": [1e10, 2e10]}, "budgets"),  # typo: extra fields are errors
])
def test_bad_configs_say_what_to_fix(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        SweepConfig(**kwargs)


def test_trial_pretrain_config_fits_the_trial():
    from components.tune.trial import pretrain_config

    config = SweepConfig(num_reports=4, eval_blocks=20, batch_size=8)
    trial = plan_trials(config, VOCAB, SEQ)[0][0].to_dict()
    pc = pretrain_config(trial, config)
    assert pc.num_steps == trial["num_steps"] and pc.learning_rate == trial["learning_rate"]
    assert pc.strategy == "none" and pc.num_workers == 1 and pc.micro_batch_size == 8
    assert pc.warmup_steps < pc.num_steps and pc.eval_every == trial["num_steps"] // 4
    assert pc.eval_batches * pc.micro_batch_size >= 20
    assert (pc.model.depth, pc.model.width) == (trial["depth"], trial["width"])


def test_shipped_sweep_recipe_validates():
    from flows.recipe import load_recipe

    recipe = load_recipe("flows/recipes/sweep.yaml")
    assert recipe.kind("sweep").name == "tune.sweep" and recipe.kind("sweep").num_cpus == 0
    assert isinstance(recipe.configs["sweep"], SweepConfig)
