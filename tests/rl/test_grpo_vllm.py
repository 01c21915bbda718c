"""GRPO on 2 Ray Train workers with vLLM rollouts raises the mean reward on a task the tiny model
can learn (a bare-number answer format).

The only vLLM engine start of the post-training tests. Rewards are sampled from rank 0's vLLM
engine, so a rise also shows the DDP-averaged weights reach the engine (without the sync,
rollouts would keep coming from the base model and the reward would stay flat).
"""
import json

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

K = 3            # first-k vs last-k steps
MARGIN = 0.10    # stated margin on the mean reward (reward in [0, 1])


def test_grpo_on_two_ray_train_workers_raises_mean_reward(tmp_path, ray_local, trained_lm_dir, prompts_dir):
    from components.rl.config import GRPOConfig, RewardSpec
    from components.rl.steps import run_grpo
    from flows.engine.context import StepContext

    # Centred, unscaled advantages (scale_rewards=False) and a moderate lr: with std-scaling a lone
    # failure in a group gets advantage -2.6 and, at high lr, pushes the tiny policy off course.
    cfg = GRPOConfig(num_steps=10, prompts_per_step=8, group_size=8, max_new_tokens=8, learning_rate=2e-3,
                     kl_beta=0.001, num_iterations=1, minibatch_size=32, rollout_backend="vllm", scale_rewards=False,
                     num_workers=2, num_effect_steps=K,
                     rewards=[RewardSpec(kind="regex", pattern=r"-?\d+\s*$")])
    summary = run_grpo(StepContext.for_test(tmp_path, {"model": trained_lm_dir, "data": prompts_dir}), cfg)
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    rewards = [h["reward_mean"] for h in history]
    first, last = sum(rewards[:K]) / K, sum(rewards[-K:]) / K
    assert last > first + MARGIN, rewards
    # The effect with its interval, from the per-sample rewards of the same first/last K steps.
    assert all(len(h["sample_rewards"]) == cfg.prompts_per_step * cfg.group_size for h in history)
    assert summary["reward_gain"] == pytest.approx(last - first)
    assert summary["reward_gain_ci_low"] <= summary["reward_gain"] <= summary["reward_gain_ci_high"]

    logged = set().union(*(json.loads(line)["metrics"] for line in (tmp_path / "_metrics.jsonl").read_text().splitlines()))
    for key in ("reward_mean", "reward_std", "kl", "clip_fraction", "completion_length_mean", "rollout_tokens_per_s",
                "time/generation_s", "time/ref_logprobs_s", "time/update_s", "time/weight_sync_s", "time/engine_start_s"):
        assert key in logged, key
    assert all(h["time/weight_sync_s"] > 0 for h in history)
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
