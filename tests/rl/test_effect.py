"""The GRPO effect: last-k minus first-k mean reward, with a bootstrap interval over prompt groups."""
import pytest

from components.rl.effect import groups_of, reward_gain


def test_a_clear_rise_has_an_interval_above_zero():
    first = [[0.0, 0.1, 0.0, 0.1]] * 4 + [[0.2, 0.1, 0.0, 0.1]] * 4
    last = [[0.5, 0.6, 0.4, 0.5]] * 4 + [[0.7, 0.5, 0.6, 0.4]] * 4
    g = reward_gain(first, last, seed=0)
    assert g["reward_gain"] == pytest.approx(0.525 - 0.075)
    assert 0 < g["reward_gain_ci_low"] <= g["reward_gain"] <= g["reward_gain_ci_high"]


def test_no_change_has_an_interval_around_zero_and_is_deterministic():
    groups = [[0.0, 1.0, 0.5, 0.2], [0.3, 0.9, 0.1, 0.4], [1.0, 0.0, 0.2, 0.8]]
    g = reward_gain(groups, groups[::-1], seed=3)
    assert g["reward_gain"] == pytest.approx(0.0)
    assert g["reward_gain_ci_low"] < 0 < g["reward_gain_ci_high"]
    assert reward_gain(groups, groups[::-1], seed=3) == g


def test_groups_are_resampled_whole_so_correlated_samples_widen_the_interval():
    # Same per-sample values; in `tight` each group mixes highs and lows, in `lumpy` whole groups are high or low.
    tight = [[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]
    lumpy = [[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]
    width = lambda g: g["reward_gain_ci_high"] - g["reward_gain_ci_low"]  # noqa: E731
    assert width(reward_gain(lumpy, lumpy)) > width(reward_gain(tight, tight)) == 0.0


def test_steps_split_into_prompt_groups():
    assert groups_of([[1, 2, 3, 4], [5, 6, 7, 8]], 2) == [[1, 2], [3, 4], [5, 6], [7, 8]]


def test_empty_windows_are_refused():
    with pytest.raises(ValueError, match="at least one group"):
        reward_gain([], [[1.0]])


def test_paired_windows_cancel_prompt_to_prompt_variation():
    # Each prompt's reward level differs a lot, and every prompt gains ~0.05: unpaired, the spread of
    # prompt levels swamps the gain; paired per prompt, the interval sits above zero.
    levels = [0.0, 0.4, 0.1, 0.8, 0.3, 0.6, 0.05, 0.5]
    first = [[lv, lv + 0.02, lv - 0.02, lv] for lv in levels]
    last = [[lv + 0.05, lv + 0.06, lv + 0.04, lv + 0.05] for lv in levels]
    unpaired, paired = reward_gain(first, last, seed=1), reward_gain(first, last, paired=True, seed=1)
    assert unpaired["reward_gain"] == pytest.approx(paired["reward_gain"]) == pytest.approx(0.05)
    assert unpaired["reward_gain_ci_low"] < 0 < paired["reward_gain_ci_low"]


def test_paired_windows_must_hold_the_same_groups():
    with pytest.raises(ValueError, match="same groups"):
        reward_gain([[0.1, 0.2]], [[0.1, 0.2], [0.3, 0.4]], paired=True)


def test_the_last_steps_replay_the_opening_prompts():
    from components.rl.config import GRPOConfig
    from components.rl.grpo import prompt_schedule

    config = GRPOConfig(num_steps=10, prompts_per_step=3, group_size=2, num_effect_steps=3)
    steps = prompt_schedule(7, config)
    assert len(steps) == 10 and all(len(s) == 3 for s in steps)
    assert steps[-3:] == steps[:3]
    unreplayed = prompt_schedule(7, config.model_copy(update={"replay_opening_prompts": False}))
    assert unreplayed[:7] == steps[:7] and unreplayed[-3:] != steps[:3]
    # Overlapping windows cannot replay: 2k > num_steps.
    assert not GRPOConfig(num_steps=4, num_effect_steps=3, group_size=2).replays
