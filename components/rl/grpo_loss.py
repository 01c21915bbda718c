"""GRPO's pieces as pure tensor functions (no Ray, no vLLM): testable on their own and on a GPU.

- group advantages: (r - mean_group) / (std_group + eps)
- clipped surrogate: -min(ratio * A, clip(ratio, 1-eps, 1+eps) * A) per completion token
- KL to the reference: the k3 estimator exp(ref - logp) - (ref - logp) - 1 (unbiased, >= 0)
Token losses are averaged per sequence, then over sequences (the original GRPO normalisation).
"""
from __future__ import annotations

import torch


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """``rewards`` is flat (num_prompts * G,), grouped contiguously by prompt."""
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    g = rewards.view(-1, group_size)
    centred = g - g.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (g.std(dim=1, keepdim=True) + eps)
    return centred.reshape(-1)


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None, advantages: torch.Tensor,
              mask: torch.Tensor, clip_eps: float, kl_beta: float) -> tuple[torch.Tensor, dict[str, float]]:
    """All tensors (B, T) over completion positions except ``advantages`` (B,); ``mask`` is 1 on real tokens."""
    mask = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    adv = advantages[:, None]
    unclipped, clipped = ratio * adv, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv
    per_token = -torch.min(unclipped, clipped)
    kl = torch.zeros_like(logp)
    if ref_logp is not None:
        d = ref_logp - logp
        kl = torch.exp(d) - d - 1
        if kl_beta > 0:
            per_token = per_token + kl_beta * kl
    lengths = mask.sum(1).clamp(min=1)
    loss = ((per_token * mask).sum(1) / lengths).mean()
    with torch.no_grad():
        n = mask.sum().clamp(min=1)
        is_clipped = ((ratio < 1 - clip_eps) & (adv < 0)) | ((ratio > 1 + clip_eps) & (adv > 0))
        stats = {"kl": float((kl * mask).sum() / n), "clip_fraction": float((is_clipped.to(mask.dtype) * mask).sum() / n),
                 "ratio_mean": float((ratio * mask).sum() / n)}
    return loss, stats
