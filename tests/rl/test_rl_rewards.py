"""Reward callables follow f(completions, **kw) -> list[float]."""
import pytest
from pydantic import ValidationError

from components.rl.config import RewardSpec
from components.rl.rewards import (
    build_rewards,
    exact_match,
    length_reward,
    regex_reward,
    score,
)


def test_exact_match_numbers_and_words():
    assert exact_match([" 12", "12 apples", "13", "While.", "for"], answer=["12", "12", "12", "while", "while"]) == \
        [1.0, 1.0, 0.0, 1.0, 0.0]


def test_regex_format_matches_at_start():
    f = regex_reward(r"-?\d+\b")
    assert f(["42", " -3 is it", "it is 42"]) == [1.0, 1.0, 0.0]


def test_length_reward_peaks_at_target():
    f = length_reward(4)
    assert f(["abcd", "ab", "abcdefgh", ""]) == [1.0, 0.5, 0.0, 0.0]


def test_build_and_score_weighted_sum():
    rewards = build_rewards([RewardSpec(kind="exact_match"), RewardSpec(kind="regex", pattern=r"\d", weight=0.5),
                             RewardSpec(kind="callable", ref="components.rl.rewards:exact_match", weight=2.0)])
    total, means = score(rewards, ["7", "x"], answer=["7", "7"], prompts=["p", "p"])
    assert total == [3.5, 0.0]
    assert means["reward/regex_1"] == 0.5


def test_reward_spec_requires_its_field():
    with pytest.raises(ValidationError, match="needs field 'pattern'"):
        RewardSpec(kind="regex")


def test_grpo_rejects_qlora_with_vllm_sync():
    from components.rl.config import GRPOConfig
    from components.sft.config import LoRASettings

    with pytest.raises(ValidationError, match="quantize_4bit"):
        GRPOConfig(lora=LoRASettings(quantize_4bit=True))
    assert GRPOConfig(lora=LoRASettings(quantize_4bit=True), rollout_backend="hf").rollout_backend == "hf"


def test_grpo_sequences_must_split_evenly_over_workers():
    from components.rl.config import GRPOConfig

    assert GRPOConfig(prompts_per_step=4, group_size=4, num_workers=2).num_workers == 2
    with pytest.raises(ValueError, match="num_workers=3"):
        GRPOConfig(prompts_per_step=4, group_size=4, num_workers=3)


def test_dpo_and_reward_model_batches_must_split_evenly_over_workers():
    from components.rl.config import DPOConfig, RewardModelConfig

    for cls in (DPOConfig, RewardModelConfig):
        assert cls(batch_size=8, num_workers=2).num_workers == 2
        with pytest.raises(ValidationError, match="num_workers=3"):
            cls(batch_size=8, num_workers=3)
