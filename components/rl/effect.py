"""The GRPO stage's effect: mean reward of the last k steps minus the first k, with a 95% interval.

Rewards of one prompt's group share the prompt, so they are not independent samples: the
bootstrap resamples whole groups (with replacement, separately within the first and the last
steps) and takes the percentile interval of the difference of means. Deterministic given the
seed. An interval above zero says the policy's reward rose beyond what prompt-to-prompt
variation explains.

When the last steps replayed the first steps' prompts (GRPOConfig.replay_opening_prompts), the
windows are paired: group i of both is the same prompt, and the bootstrap resamples the per-prompt
differences. Prompt-to-prompt variation then cancels instead of widening the interval (in the e2e
flow it was ~94% of the variance of a group's mean reward).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def reward_gain(first_groups: Sequence[Sequence[float]], last_groups: Sequence[Sequence[float]], *,
                paired: bool = False, num_resamples: int = 2000, level: float = 0.95,
                seed: int = 0) -> dict[str, float]:
    """``reward_gain`` (last mean - first mean over samples) and its ``reward_gain_ci_low`` / ``_high``.

    ``paired``: group i of ``last_groups`` is the same prompt as group i of ``first_groups``.
    """
    if not first_groups or not last_groups:
        raise ValueError("reward_gain needs at least one group of rewards in the first and in the last steps")
    first = np.asarray(first_groups, dtype=np.float64)  # (groups, G)
    last = np.asarray(last_groups, dtype=np.float64)
    gain = float(last.mean() - first.mean())
    rng = np.random.default_rng(seed)
    if paired:
        if first.shape != last.shape:
            raise ValueError(f"paired windows need the same groups: first {first.shape} vs last {last.shape}")
        diffs = last.mean(axis=1) - first.mean(axis=1)
        boot = diffs[rng.integers(0, len(diffs), (num_resamples, len(diffs)))].mean(axis=1)
        low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
        return {"reward_gain": gain, "reward_gain_ci_low": float(low), "reward_gain_ci_high": float(high)}
    boot_first = first.mean(axis=1)[rng.integers(0, len(first), (num_resamples, len(first)))].mean(axis=1)
    boot_last = last.mean(axis=1)[rng.integers(0, len(last), (num_resamples, len(last)))].mean(axis=1)
    low, high = np.quantile(boot_last - boot_first, [(1 - level) / 2, (1 + level) / 2])
    return {"reward_gain": gain, "reward_gain_ci_low": float(low), "reward_gain_ci_high": float(high)}


def groups_of(step_rewards: Sequence[Sequence[float]], group_size: int) -> list[list[float]]:
    """Each step's flat per-sample rewards (prompt-major) split into one list per prompt."""
    return [list(r[i:i + group_size]) for r in step_rewards for i in range(0, len(r), group_size)]
