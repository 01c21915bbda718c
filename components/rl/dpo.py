"""Direct Preference Optimisation on a LoRA adapter; the reference is the base with the adapter disabled.

loss = -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))), log-probs summed over response tokens.
The headline metric is the held-out implicit-reward margin (pi_c - ref_c) - (pi_r - ref_r).

Runs in every Ray Train worker (components/rl/workers.py) or as a plain function: all ranks
draw the same batch of pairs and each takes every world_size-th pair; DDP averages the
adapter gradients. Chosen and rejected go through one forward pass (one DDP reduction).
"""
from __future__ import annotations

import random
from collections.abc import Callable

from components.rl.config import DPOConfig


def _batch(tok, pairs, max_len: int, device):
    """Chosen sequences first, then rejected, padded together."""
    from components.rl.prefs import encode_pair_side
    from components.sft.chat import collate

    seqs = [encode_pair_side(tok, p["prompt"], p[side], max_len) for side in ("chosen", "rejected") for p in pairs]
    return {k: v.to(device) for k, v in collate(seqs, tok.pad_token_id).items()}


def _chosen_rejected(model, batch):
    from components.rl.prefs import sequence_logps

    lp = sequence_logps(model, batch)
    half = len(lp) // 2
    return lp[:half], lp[half:]


def _margins(model, tok, pairs, cfg: DPOConfig, device, ref_cache: dict | None = None):
    """Policy and reference log-ratio margins for ``pairs``; ref values are cached (they never change)."""
    import torch

    out = []
    for i in range(0, len(pairs), cfg.batch_size):
        b = _batch(tok, pairs[i:i + cfg.batch_size], cfg.max_seq_len, device)
        with torch.no_grad():
            pc, pr = _chosen_rejected(model, b)
            with model.disable_adapter():
                rc, rr = _chosen_rejected(model, b)
        out.append((pc - rc) - (pr - rr))
    return torch.cat(out) if out else torch.zeros(0)


def dpo_train(model, tok, train: list[dict], held: list[dict], cfg: DPOConfig,
              log: Callable[[dict, int], None], comm=None, ddp_model=None) -> list[dict]:
    """Train ``model`` (PEFT) in place. ``ddp_model``: ``model`` wrapped in DDP when ``comm.world > 1``."""
    import torch
    import torch.nn.functional as F

    from components.train.fit import LocalComm

    comm = comm or LocalComm()
    learner = ddp_model if ddp_model is not None else model
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    rng = random.Random(cfg.seed)
    evals = held or train
    history = []
    m0 = _margins(model, tok, evals, cfg, device)
    history.append({"eval_margin": float(m0.mean()), "eval_accuracy": float((m0 > 0).float().mean())})
    log(history[-1], 0)
    for step in range(1, cfg.num_steps + 1):
        chunk = rng.sample(train, min(cfg.batch_size, len(train)))[comm.rank::comm.world]
        b = _batch(tok, chunk, cfg.max_seq_len, device)
        with torch.no_grad(), model.disable_adapter():
            rc, rr = _chosen_rejected(model, b)
        pc, pr = _chosen_rejected(learner, b)
        margin = (pc - rc) - (pr - rr)
        loss = -F.logsigmoid(cfg.beta * margin).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        rec = comm.mean({"loss": float(loss), "train_margin": float(margin.mean()),
                         "train_accuracy": float((margin > 0).float().mean()),
                         "chosen_reward": float(cfg.beta * (pc - rc).mean()),
                         "rejected_reward": float(cfg.beta * (pr - rr).mean())})
        if step == cfg.num_steps:
            m = _margins(model, tok, evals, cfg, device)
            rec.update({"eval_margin": float(m.mean()), "eval_accuracy": float((m > 0).float().mean())})
        history.append(rec)
        log(rec, step)
    return history
