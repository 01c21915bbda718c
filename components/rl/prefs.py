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


def encode_pair_side(tokenizer, prompt: str, response: str, max_len: int, messages: list[dict] | None = None) -> dict:
    """``messages`` (the chat the model answered, e.g. the router's grounded prompt) when known, else the
    prompt as one user turn; then the response as the assistant turn. Over ``max_len`` the end is cut, unless
    that would cut the whole response (a long grounded prompt): then the start of the prompt goes instead,
    so a pair never silently trains on no response token."""
    from components.sft.chat import IGNORE, encode_chat

    chat = [dict(m) for m in messages] if messages is not None else [{"role": "user", "content": prompt}]
    chat.append({"role": "assistant", "content": response})
    full = encode_chat(tokenizer, chat, 1 << 30)
    if len(full["input_ids"]) <= max_len or any(t != IGNORE for t in full["labels"][:max_len]):
        return {k: v[:max_len] for k, v in full.items()}
    return {k: v[-max_len:] for k, v in full.items()}


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
