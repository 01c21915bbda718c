"""Preference pairs (prompt/chosen/rejected, read with components.artifacts.read_preferences)
-> tokenised chat sequences.

The online evaluation loop exports these pairs from user feedback, so serving feeds training.
Prompt and response are rendered with the chat template; only the response tokens (the
assistant turn) count in log-probabilities.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def encode_pair_side(tokenizer, prompt: str, response: str, max_len: int) -> dict:
    from components.sft.chat import encode_chat

    return encode_chat(tokenizer, [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], max_len)


def split(pairs: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    import random

    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    k = round(len(pairs) * eval_fraction)
    if len(pairs) > 1:
        k = min(max(k, 1 if eval_fraction > 0 else 0), len(pairs) - 1)
    return [pairs[i] for i in order[k:]], [pairs[i] for i in order[:k]]


def sequence_logps(model, batch) -> torch.Tensor:
    """Sum of response-token log-probabilities per sequence (labels == -100 elsewhere)."""
    import torch

    from components.sft.chat import IGNORE

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE
    lp = torch.log_softmax(logits, -1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    return (lp * mask).sum(-1)
