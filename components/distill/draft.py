"""Distil a small draft Llama from a target: forward KL to the target's softmax over the token shards.

The same loop with ``teacher=None`` trains the data-only baseline (cross-entropy on the
tokens), with the same init, batches and schedule, so the two drafts differ only in what
they learn from. In Ray Train workers every rank draws the same batch indices and keeps every
world_size-th block; DDP averages the draft's gradients (components/distill/worker.py).
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from components.distill.config import DraftDistillConfig


def draft_config(target_config, cfg: DraftDistillConfig):
    from components.models.presets import build_config

    if cfg.architecture == "target":
        return truncated_config(target_config, cfg.depth)
    if cfg.width:
        width = cfg.width
    elif cfg.init_from_target:  # layer-drop init copies tensors: same width as the target
        width = target_config.hidden_size
    else:
        width = max(64, (target_config.hidden_size // 2 + 31) // 32 * 32)
    dc = build_config(depth=cfg.depth, vocab_size=target_config.vocab_size,
                      max_seq_len=target_config.max_position_embeddings,
                      tie_embeddings=bool(getattr(target_config, "tie_word_embeddings", False)), width=width)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(dc, key, getattr(target_config, key, None))
    if dc.head_dim < 32:
        raise ValueError(f"draft head_dim {dc.head_dim} < 32: vLLM's CPU attention rejects it; raise width")
    return dc


def truncated_config(target_config, depth: int):
    """The target's config with its first ``depth`` layers (per-layer lists, such as layer_types, cut too)."""
    if depth > target_config.num_hidden_layers:
        raise ValueError(f"depth={depth} exceeds the target's {target_config.num_hidden_layers} layers; a draft "
                         "must be smaller than its target: lower depth")
    values = target_config.to_dict()
    values["num_hidden_layers"] = depth
    for key, value in list(values.items()):
        if isinstance(value, list) and len(value) == target_config.num_hidden_layers and key != "architectures":
            values[key] = value[:depth]
    values.pop("auto_map", None)
    dc = type(target_config).from_dict(values)
    if getattr(dc, "head_dim", None) and dc.head_dim < 32:
        raise ValueError(f"the target's head_dim {dc.head_dim} < 32: vLLM's CPU attention rejects it")
    return dc


def new_draft(dc):
    """A fresh draft model for config ``dc`` (a Llama preset, or the target's own architecture)."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(dc) if type(dc) is LlamaConfig else AutoModelForCausalLM.from_config(dc)


def init_from_target(draft, target) -> None:
    """Copy embeddings, LM head, final norm and the first layers of ``target`` into ``draft`` (shapes must match)."""
    import torch

    if draft.config.hidden_size != target.config.hidden_size:
        raise ValueError(f"init_from_target needs the draft width to equal the target's "
                         f"({target.config.hidden_size}); set width: {target.config.hidden_size} or init_from_target: false")
    source = target.state_dict()
    with torch.no_grad():
        for name, param in draft.state_dict().items():
            if name in source and source[name].shape == param.shape:
                param.copy_(source[name])


def train_draft(draft, blocks, cfg: DraftDistillConfig, teacher=None, log: Callable[[dict, int], None] | None = None,
                comm=None, ddp_model=None) -> list[dict]:
    """Train ``draft`` in place. ``ddp_model``: ``draft`` wrapped in DDP when ``comm.world > 1``."""
    import torch
    import torch.nn.functional as F

    from components.train.fit import LocalComm

    comm = comm or LocalComm()
    learner = ddp_model if ddp_model is not None else draft

    rng = np.random.default_rng(cfg.seed)
    seq_len = min(cfg.seq_len or blocks.seq_len, blocks.seq_len)
    opt = torch.optim.AdamW(draft.parameters(), lr=cfg.learning_rate, weight_decay=0.0)
    warmup = max(1, cfg.num_steps // 10)
    history = []
    device = next(draft.parameters()).device
    draft.train()
    for step in range(1, cfg.num_steps + 1):
        t0 = time.perf_counter()
        lr = cfg.learning_rate * min(1.0, step / warmup) * max(0.05, 1 - step / cfg.num_steps)
        for g in opt.param_groups:
            g["lr"] = lr
        picked = rng.integers(0, len(blocks), cfg.batch_size)[comm.rank::comm.world]
        ids = torch.from_numpy(blocks.take(picked)[:, :seq_len]).to(device)
        logits = learner(input_ids=ids).logits[:, :-1].float()
        ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1))
        rec = {"ce": ce.item()}
        if teacher is not None:
            with torch.no_grad():
                t_logits = teacher(input_ids=ids).logits[:, :-1].float()
            T = cfg.temperature
            kl = F.kl_div(F.log_softmax(logits / T, -1).reshape(-1, logits.size(-1)),
                          F.log_softmax(t_logits / T, -1).reshape(-1, logits.size(-1)),
                          log_target=True, reduction="batchmean") * T * T
            loss = kl + cfg.ce_weight * ce
            rec["kl"] = kl.item()
        else:
            loss = ce
        loss.backward()
        torch.nn.utils.clip_grad_norm_(draft.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        rec = comm.mean({**rec, "loss": loss.item()})
        rec.update({"lr": lr, "tokens_per_s": ids.numel() * comm.world / (time.perf_counter() - t0)})
        history.append(rec)
        if log is not None:
            log(rec, step)
    draft.eval()
    return history
