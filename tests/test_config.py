"""The shared config base: renamed fields fail with a message naming the new name."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from components.sft.config import SFTConfig
from components.train.config import PretrainConfig
from components.tune.config import LrSearchConfig, SweepConfig
from flows.recipe import RecipeError, load_recipe


@pytest.mark.parametrize("config_type, old, new", [
    (PretrainConfig, "lr", "learning_rate"),
    (PretrainConfig, "max_steps", "num_steps"),
    (SFTConfig, "max_steps", "num_steps"),
    (SweepConfig, "lr", "learning_rate"),
    (SweepConfig, "min_lr_frac", "min_lr_ratio"),
    (SweepConfig, "max_steps", "max_trial_steps"),
    (LrSearchConfig, "lrs", "learning_rates"),
])
def test_old_key_names_the_new_one(config_type, old, new):
    with pytest.raises(ValidationError, match=f"'{old}' was renamed to '{new}'"):
        config_type.model_validate({old: 1})
    assert new in config_type.model_fields


def test_every_old_key_in_one_config_is_named_at_once():
    with pytest.raises(ValidationError) as e:
        PretrainConfig.model_validate({"lr": 1e-3, "max_steps": 10})
    assert "'lr' was renamed to 'learning_rate'; 'max_steps' was renamed to 'num_steps'" in str(e.value)


def test_recipe_validation_names_the_new_key_with_the_step_path():
    with pytest.raises(RecipeError) as e:
        load_recipe("e2e", ["steps.pretrain.config.lr=0.001", "steps.sft.config.max_steps=8"])
    problems = {p.path: p.why for p in e.value.problems}
    assert "'lr' was renamed to 'learning_rate'" in problems["steps.pretrain.config"]
    assert "'max_steps' was renamed to 'num_steps'" in problems["steps.sft.config"]
    sft = next(p for p in e.value.problems if p.path == "steps.sft.config")
    assert sft.value == ["max_steps"] and "new name" in sft.fix  # the old key, not the whole config


def test_nested_old_key_is_reported_at_its_path():
    with pytest.raises(RecipeError) as e:
        load_recipe("sweep", ["steps.sweep.config.lr_search.lrs=[0.01, 0.001]"])
    assert any(p.path.endswith("config.lr_search") and "'lrs' was renamed to 'learning_rates'" in p.why
               for p in e.value.problems), e.value
