"""A Bradley-Terry reward model, and the callable that lets GRPO use it as a reward.

The base LM gets a scalar head (``AutoModelForSequenceClassification``, num_labels=1, read at
the last non-pad token) and is trained on the same preference pairs as DPO with
loss = -log sigmoid(r(chosen) - r(rejected)). Like DPO it runs in Ray Train workers
(components/rl/workers.py): every rank takes every world_size-th pair of the step's batch,
chosen and rejected in one forward pass, and DDP averages the gradients.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

from components.artifacts import Model
from components.rl.config import RewardModelConfig


def _encode(tok, prompts: Sequence[str], responses: Sequence[str], max_len: int, device):
    from components.rl.prefs import encode_pair_side
    from components.sft.chat import collate

    b = collate([encode_pair_side(tok, p, r, max_len) for p, r in zip(prompts, responses)], tok.pad_token_id)
    return {"input_ids": b["input_ids"].to(device), "attention_mask": b["attention_mask"].to(device)}


def load_reward_model(model_dir: str | Path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    model.config.pad_token_id = tok.pad_token_id  # the head reads the last non-pad token
    return model, tok


def rewards_of(model, tok, prompts, responses, max_len: int, batch_size: int = 16):
    import torch

    device = next(model.parameters()).device
    out = []
    for i in range(0, len(prompts), batch_size):
        b = _encode(tok, prompts[i:i + batch_size], responses[i:i + batch_size], max_len, device)
        out.append(model(**b).logits.squeeze(-1))
    return torch.cat(out)


def pairwise_accuracy(model, tok, pairs: list[dict], max_len: int) -> tuple[float, float]:
    import torch

    with torch.no_grad():
        rc = rewards_of(model, tok, [p["prompt"] for p in pairs], [p["chosen"] for p in pairs], max_len)
        rr = rewards_of(model, tok, [p["prompt"] for p in pairs], [p["rejected"] for p in pairs], max_len)
    return float((rc > rr).float().mean()), float((rc - rr).mean())


def train_reward_model(model, tok, train: list[dict], held: list[dict], cfg: RewardModelConfig,
                       log: Callable[[dict, int], None], comm=None, ddp_model=None) -> list[dict]:
    """Train ``model`` in place. ``ddp_model``: ``model`` wrapped in DDP when ``comm.world > 1``."""
    import torch
    import torch.nn.functional as F

    from components.train.fit import LocalComm

    comm = comm or LocalComm()
    learner = ddp_model if ddp_model is not None else model
    device = next(model.parameters()).device
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=0.0)
    evals = held or train
    acc, margin = pairwise_accuracy(model, tok, evals, cfg.max_seq_len)
    history = [{"eval_accuracy": acc, "eval_reward_margin": margin}]
    log(history[-1], 0)
    model.train()
    for step in range(1, cfg.num_steps + 1):
        chunk = rng.sample(train, min(cfg.batch_size, len(train)))[comm.rank::comm.world]
        prompts = [p["prompt"] for p in chunk]
        b = _encode(tok, prompts * 2, [p["chosen"] for p in chunk] + [p["rejected"] for p in chunk],
                    cfg.max_seq_len, device)
        r = learner(**b).logits.squeeze(-1)
        rc, rr = r[:len(chunk)], r[len(chunk):]
        loss = -F.logsigmoid(rc - rr).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        rec = comm.mean({"loss": loss.item(), "train_accuracy": float((rc > rr).float().mean())})
        if step == cfg.num_steps:
            model.eval()
            rec["eval_accuracy"], rec["eval_reward_margin"] = pairwise_accuracy(model, tok, evals, cfg.max_seq_len)
        history.append(rec)
        log(rec, step)
    return history


class RewardModelScorer:
    """GRPO reward callable: ``scorer(completions, prompts=[...]) -> list[float]``."""

    def __init__(self, path: str | Path, max_len: int = 256):
        from flows.engine.store import open_artifact

        # A store URI is downloaded into this node's cache: GRPO's rank 0 may run where the artifact never was.
        self.model_dir = Model.read(open_artifact(str(path)), made_by="rl.reward_model").dir
        self.model, self.tok = load_reward_model(self.model_dir)
        self.model.eval()
        self.max_len = max_len

    def __call__(self, completions: Sequence[str], prompts: Sequence[str], **_) -> list[float]:
        import torch

        with torch.no_grad():
            return [float(x) for x in rewards_of(self.model, self.tok, list(prompts), list(completions), self.max_len)]
