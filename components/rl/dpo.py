"""Direct Preference Optimisation on a LoRA adapter; the reference is the policy training starts from.

loss = -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))), log-probs summed over response tokens.
The headline metric is the held-out implicit-reward margin (pi_c - ref_c) - (pi_r - ref_r).
With ``nll_weight`` > 0 the loss adds that weight times the chosen answers' mean per-token negative
log-likelihood (RPO, Pang et al. 2024; TRL's ``rpo_alpha``): plain DPO can lower the chosen answers'
likelihood along with the rejected ones', moving mass to answers nobody voted on.

The reference is the starting policy: the ``adapter`` input when training starts from one (the
champion, in a flywheel turn), else the base (a fresh adapter's B is zero). Disabling the adapter gave
the base even when training started from an adapter, so DPO pulled the champion towards the base and
the margins started away from zero. The reference never changes, so its log-probabilities are computed
once, before the first update, for every pair the run will use: the held-out pairs and the pairs of
each step, whose schedule is drawn up front (the same draws as sampling step by step).

Runs in every Ray Train worker (components/rl/workers.py) or as a plain function: all ranks
draw the same batch of pairs and each takes every world_size-th pair; DDP averages the
adapter gradients. Chosen and rejected go through one forward pass (one DDP reduction).
"""
from __future__ import annotations

import random
from collections.abc import Callable

from components.rl.config import DPOConfig


def _batch(tok, pairs, max_len: int, device):
    """Chosen sequences first, then rejected, padded together; a pair's served chat when it has one."""
    from components.rl.prefs import encode_pair_side
    from components.sft.chat import collate

    seqs = [encode_pair_side(tok, p["prompt"], p[side], max_len, p.get("messages"))
            for side in ("chosen", "rejected") for p in pairs]
    return {k: v.to(device) for k, v in collate(seqs, tok.pad_token_id).items()}


def _chosen_rejected(model, batch):
    from components.rl.prefs import sequence_logps

    lp = sequence_logps(model, batch)
    half = len(lp) // 2
    return lp[:half], lp[half:]


def _response_tokens(batch):
    """Response tokens per sequence (at least 1): the per-token scale of the NLL term."""
    from components.sft.chat import IGNORE

    return (batch["labels"][:, 1:] != IGNORE).sum(-1).clamp(min=1)


def _logps(model, tok, pairs, cfg: DPOConfig, device):
    """(chosen, rejected) summed response log-probs of ``pairs`` under ``model`` as it is now, no gradient."""
    import torch

    chosen, rejected = [], []
    with torch.no_grad():
        for i in range(0, len(pairs), cfg.batch_size):
            c, r = _chosen_rejected(model, _batch(tok, pairs[i:i + cfg.batch_size], cfg.max_seq_len, device))
            chosen.append(c)
            rejected.append(r)
    return (torch.cat(chosen), torch.cat(rejected)) if pairs else (torch.zeros(0), torch.zeros(0))


def _margins(model, tok, pairs, ref, cfg: DPOConfig, device):
    """Policy-over-reference log-ratio margins of ``pairs``; ``ref`` = their reference (chosen, rejected)."""
    pc, pr = _logps(model, tok, pairs, cfg, device)
    return (pc - ref[0]) - (pr - ref[1])


def step_schedule(num_train: int, cfg: DPOConfig) -> list[list[int]]:
    """Indices of the training pairs of each step (before the per-rank split), drawn from ``cfg.seed``."""
    rng = random.Random(cfg.seed)
    return [rng.sample(range(num_train), min(cfg.batch_size, num_train)) for _ in range(cfg.num_steps)]


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
    evals = held or train
    chunks = [idx[comm.rank::comm.world] for idx in step_schedule(len(train), cfg)]
    # The reference: the starting policy, before any update, on every pair this rank will see.
    used = sorted({i for idx in chunks for i in idx})
    ref_c, ref_r = _logps(model, tok, [train[i] for i in used], cfg, device)
    ref = {i: (ref_c[k], ref_r[k]) for k, i in enumerate(used)}
    ref_evals = _logps(model, tok, evals, cfg, device)
    history = []
    m0 = _margins(model, tok, evals, ref_evals, cfg, device)
    history.append({"eval_margin": float(m0.mean()), "eval_accuracy": float((m0 > 0).float().mean())})
    log(history[-1], 0)
    for step, idx in enumerate(chunks, 1):
        b = _batch(tok, [train[i] for i in idx], cfg.max_seq_len, device)
        rc = torch.stack([ref[i][0] for i in idx])
        rr = torch.stack([ref[i][1] for i in idx])
        pc, pr = _chosen_rejected(learner, b)
        margin = (pc - rc) - (pr - rr)
        loss = -F.logsigmoid(cfg.beta * margin).mean()
        if cfg.nll_weight:
            loss = loss + cfg.nll_weight * (-pc / _response_tokens(b)[:len(pc)]).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        rec = comm.mean({"loss": float(loss), "train_margin": float(margin.mean()),
                         "train_accuracy": float((margin > 0).float().mean()),
                         "chosen_reward": float(cfg.beta * (pc - rc).mean()),
                         "rejected_reward": float(cfg.beta * (pr - rr).mean())})
        if step == cfg.num_steps:
            m = _margins(model, tok, evals, ref_evals, cfg, device)
            rec.update({"eval_margin": float(m.mean()), "eval_accuracy": float((m > 0).float().mean())})
        history.append(rec)
        log(rec, step)
    return history
