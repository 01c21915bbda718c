"""The GRPO loop: vLLM rollouts -> rewards -> group advantages -> reference log-probs -> clipped update.

Runs in every Ray Train worker (``grpo_worker`` in components/rl/workers.py) or as a plain function. Rank 0
owns the rollout engine: it samples the step's groups, scores them and broadcasts the batch;
each rank then takes every world_size-th sequence for reference log-probs and the update, and
DDP averages the adapter gradients. After the update rank 0 pushes the merged weights into its
engine every ``sync_every`` steps. The KL reference is the adapter the run started from, loaded a
second time and frozen (``kl_reference: start``), or the base with the adapter disabled (``base``, or
when there is no starting adapter): one extra forward pass, and no second copy of the base weights.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

from components.rl.config import GRPOConfig

SAMPLE_REWARDS = "sample_rewards"  # history key of a step's per-sample rewards (prompt-major, group_size each)
STEP_PROMPTS = "prompt_ids"  # history key of the step's prompt indices (into prompts.jsonl), in group order


def _sequences(prompt_ids: list[list[int]], groups, pad_id: int):
    """Pack prompt + completion per sample; mask marks completion tokens (as targets at t-1)."""
    import torch

    rows, comp_lens = [], []
    for p_ids, group in zip(prompt_ids, groups):
        for c in group:
            rows.append((p_ids, c.token_ids))
            comp_lens.append(len(c.token_ids))
    T = max(len(p) + len(c) for p, c in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), T), dtype=torch.long)
    target_mask = torch.zeros((len(rows), T - 1), dtype=torch.long)
    for i, (p, c) in enumerate(rows):
        seq = p + c
        ids[i, :len(seq)] = torch.tensor(seq)
        attn[i, :len(seq)] = 1
        target_mask[i, len(p) - 1:len(seq) - 1] = 1  # position t predicts token t+1
    return ids, attn, target_mask, comp_lens


def _logprobs(model, ids, attn, minibatch: int):
    import torch

    from components.sft.chat import token_logprobs

    return torch.cat([token_logprobs(model, ids[i:i + minibatch], attn[i:i + minibatch])
                      for i in range(0, len(ids), minibatch)])


def prompt_schedule(num_prompts: int, config: GRPOConfig) -> list[list[int]]:
    """The prompt indices of each step: shuffled passes over the prompts, ``prompts_per_step`` at a time;
    with ``config.replays`` the last ``effect_steps`` steps repeat the first ones' prompts (see
    components/rl/effect.py for why)."""
    rng = random.Random(config.seed)
    order: list[int] = []
    steps: list[list[int]] = []
    k = config.effect_steps
    for step in range(1, config.num_steps + 1):
        if config.replays and step > config.num_steps - k:
            steps.append(steps[step - (config.num_steps - k) - 1])
            continue
        while len(order) < config.prompts_per_step:
            more = list(range(num_prompts))
            rng.shuffle(more)
            order += more
        steps.append(order[:config.prompts_per_step])
        del order[:config.prompts_per_step]
    return steps


def punish_truncated(rewards: list[float], completions, max_new_tokens: int, eos_id: int,
                     truncated_reward: float | None) -> tuple[list[float], float]:
    """``rewards`` with each completion cut at the length cap (no EOS) set to ``truncated_reward``
    (unchanged when it is None), and the share of such completions."""
    cut = [len(c.token_ids) >= max_new_tokens and eos_id not in c.token_ids for c in completions]
    if truncated_reward is not None:
        rewards = [truncated_reward if t else r for r, t in zip(rewards, cut)]
    return rewards, sum(cut) / max(len(cut), 1)


def grpo_train(model, tokenizer, prompts: list[dict], rewards, config: GRPOConfig, engine, sync_dir: Path,
               base_dir: Path, log: Callable[[dict, int], None], comm=None, ddp_model=None) -> list[dict]:
    """Train ``model`` (PEFT, trainable adapter) in place; returns per-step metric records.

    ``engine`` and ``rewards`` are used on rank 0 only. ``ddp_model`` is ``model`` wrapped for
    gradient averaging (DDP) when ``comm.world > 1``.
    """
    import contextlib

    import torch

    from components.rl.grpo_loss import group_advantages, grpo_loss
    from components.rl.rewards import score
    from components.rl.rollout import merged_state_dict, write_weights
    from components.sft.chat import prompt_text, token_logprobs
    from components.sft.lora import reference_model
    from components.train.fit import LocalComm

    comm = comm or LocalComm()
    lead = comm.rank == 0
    learner = ddp_model if ddp_model is not None else model
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    schedule = prompt_schedule(len(prompts), config)
    history = []
    sync_s = 0.0
    if lead and engine.backend == "vllm":  # the engine starts from the base weights: push the starting adapter
        sync_s = engine.sync(write_weights(merged_state_dict(model), base_dir, sync_dir))
    for step in range(1, config.num_steps + 1):
        t_step = time.perf_counter()
        batch_ids = schedule[step - 1]
        batch = [prompts[i] for i in batch_ids]
        texts = [prompt_text(tokenizer, r["prompt"]) for r in batch]

        gen_s, rollout = 0.0, None
        if lead:
            t0 = time.perf_counter()
            groups = engine.generate(texts, n=config.group_size, max_new_tokens=config.max_new_tokens,
                                     temperature=config.temperature, seed=config.seed * 100003 + step,
                                     top_k=config.top_k, top_p=config.top_p)
            gen_s = time.perf_counter() - t0
            flat = [c for g in groups for c in g]
            completions = [c.text for c in flat]
            keys = dict.fromkeys(k for r in batch for k in r)  # a mixed prompt set: missing columns are None
            columns = {k: [r.get(k) for r in batch for _ in range(config.group_size)] for k in keys}
            columns["prompts"] = columns.pop("prompt")
            reward_list, reward_means = score(rewards, completions, **columns)
            reward_list, reward_means["truncated_share"] = punish_truncated(
                reward_list, flat, config.max_new_tokens, tokenizer.eos_token_id,
                config.truncated_reward)
            rollout = (groups, reward_list, reward_means, gen_s)
        groups, reward_list, reward_means, gen_s = comm.broadcast(rollout)
        r = torch.tensor(reward_list, dtype=torch.float32)
        adv = group_advantages(r, config.group_size, scale=config.scale_rewards).to(device)

        prompt_ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        ids, attn, mask, comp_lens = _sequences(prompt_ids, groups, tokenizer.pad_token_id)
        mine = torch.arange(comm.rank, len(ids), comm.world)  # this rank's share of the sequences
        ids, attn, mask, adv = ids[mine].to(device), attn[mine].to(device), mask[mine].to(device), adv[mine.to(device)]

        t0 = time.perf_counter()
        # Reference log-probs are computed even at kl_beta=0: the KL is still worth watching.
        with torch.no_grad(), reference_model(model):
            ref_logp = _logprobs(model, ids, attn, config.minibatch_size)
        ref_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        old_logp = None
        stats_acc: dict[str, list[float]] = {}
        n = len(ids)
        for it in range(config.num_iterations):
            if it == 0 and config.num_iterations > 1:
                with torch.no_grad():
                    old_logp = _logprobs(model, ids, attn, config.minibatch_size)
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed + step * 31 + it))
            starts = range(0, n, config.minibatch_size)
            for s in starts:
                idx = perm[s:s + config.minibatch_size].to(device)
                # DDP all-reduces on the pass's last backward only; earlier ones accumulate locally.
                last = s == starts[-1]
                sync = contextlib.nullcontext() if last or ddp_model is None else ddp_model.no_sync()
                with sync:
                    logp = token_logprobs(learner, ids[idx], attn[idx])
                    old = old_logp[idx] if old_logp is not None else logp.detach()  # mu=1: ratio is 1 by definition
                    loss, stats = grpo_loss(logp, old, ref_logp[idx], adv[idx],
                                            mask[idx], config.clip_eps, config.kl_beta)
                    (loss * len(idx) / n).backward()
                stats["loss"] = float(loss)
                for k, v in stats.items():
                    stats_acc.setdefault(k, []).append(v)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        update_s = time.perf_counter() - t0

        if lead and engine.backend == "vllm" and (step % config.sync_every == 0):
            t0 = time.perf_counter()
            write_weights(merged_state_dict(model), base_dir, sync_dir)
            engine.sync(sync_dir)
            sync_s = time.perf_counter() - t0
        num_gen_tokens = sum(comp_lens)
        rec = {
            "reward_mean": float(r.mean()), "reward_std": float(r.std()),
            **comm.mean({k: sum(v) / len(v) for k, v in stats_acc.items()}),
            "completion_length_mean": num_gen_tokens / len(comp_lens),
            "rollout_tokens_per_s": num_gen_tokens / max(gen_s, 1e-9),
            "time/generation_s": gen_s, "time/ref_logprobs_s": ref_s, "time/update_s": update_s,
            "time/weight_sync_s": sync_s, "time/step_s": time.perf_counter() - t_step, **reward_means,
            # Per-sample rewards (grouped by prompt) for the effect's confidence interval; not a metric.
            SAMPLE_REWARDS: reward_list, STEP_PROMPTS: list(batch_ids),
        }
        history.append(rec)
        log(rec, step)
    return history
