"""Reward callables follow f(completions, **kw) -> list[float]."""
import pytest
from pydantic import ValidationError

from components.rl.config import RewardSpec
from components.rl.rewards import (
    build_rewards,
    citation,
    copy_span,
    exact_match,
    length_reward,
    regex_reward,
    score,
    token_f1,
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


def test_token_f1_gives_partial_credit_and_ignores_citations():
    answer = "The with statement wraps a block"
    f = token_f1(["The with statement wraps a block [2]", "the with statement", "unrelated words", "", "7"],
                 answer=[answer, answer, answer, answer, None])
    assert f[0] == 1.0 and f[2] == 0.0 and f[3] == 0.0 and f[4] == 0.0
    assert f[1] == pytest.approx(2 * 1.0 * 0.5 / 1.5)  # precision 3/3, recall 3/6


def test_copy_span_rewards_consecutive_words_over_word_soup():
    answer = "assert statements insert debugging assertions into a program"
    copied, soup = copy_span(["Assert statements insert debugging ... [1]", "program a into assertions debugging"],
                             answer=[answer, answer])
    assert copied == pytest.approx(4 / 8) and soup == pytest.approx(1 / 8)
    assert token_f1(["program a into assertions debugging"], answer=[answer])[0] > soup  # F1 is order-blind


def test_citation_reward_wants_exactly_the_gold_source():
    assert citation(["x [2]", "x [1] [2]", "x [1]", "x", "x [2]"], citation=[2, 2, 2, 2, None]) == \
        [1.0, 0.5, 0.0, 0.0, 0.0]


def test_default_rewards_follow_the_prompt_columns():
    from components.rl.config import default_rewards

    assert [(s.kind, s.weight) for s in default_rewards({"prompt", "answer", "citation", "source_id"})] == \
        [("token_f1", 1.0), ("citation", 0.2)]
    assert [s.kind for s in default_rewards({"prompt", "answer"})] == ["exact_match", "regex"]
    with pytest.raises(ValueError, match="need 'answer'"):
        default_rewards({"prompt"})


def test_grounded_rewards_score_a_mixed_prompt_set():
    rewards = build_rewards([RewardSpec(kind="token_f1"), RewardSpec(kind="citation", weight=0.2)])
    total, means = score(rewards, ["Blocks are wrapped [1]", "7"], answer=["Blocks are wrapped", "7"],
                         citation=[1, None], prompts=["p", "q"])
    assert total == pytest.approx([1.2, 1.0])
    assert means["reward/citation_1"] == 0.5


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


def test_grpo_step_refuses_rewards_whose_columns_the_prompts_lack(tmp_path):
    """Checked before any worker starts: a citation reward on answer-only prompts is a config error."""
    from components.rl.config import GRPOConfig
    from components.rl.steps import run_grpo
    from components.sft.dataset import arithmetic_prompts, write_jsonl
    from flows.engine.context import StepContext

    write_jsonl(tmp_path / "prompts.jsonl", arithmetic_prompts(4, 5, seed=0))
    ctx = StepContext.for_test(tmp_path / "out", {"model": tmp_path, "data": tmp_path})
    with pytest.raises(ValueError, match=r"reads the prompt column\(s\) \['citation'\]"):
        run_grpo(ctx, GRPOConfig(rewards=[RewardSpec(kind="citation")]))


def test_a_completion_cut_at_the_cap_gets_the_truncated_reward_and_an_ended_one_keeps_its_own():
    from components.rl.grpo import punish_truncated
    from components.rl.rollout import Completion

    eos = 1
    done_at_cap = Completion([5, 6, 7, eos], "a b c")      # reached the cap but ended with EOS
    cut = Completion([5, 6, 7, 8], "a b c d")               # cap 4, no EOS: never ended
    short = Completion([5, eos], "a")
    rewards, share = punish_truncated([0.9, 0.8, 0.3], [done_at_cap, cut, short], 4, eos, 0.0)
    assert rewards == [0.9, 0.0, 0.3] and share == pytest.approx(1 / 3)
    # None keeps every reward and still reports the share
    assert punish_truncated([0.9, 0.8, 0.3], [done_at_cap, cut, short], 4, eos, None) == ([0.9, 0.8, 0.3], pytest.approx(1 / 3))
