"""Greedy speculative-decoding acceptance, measured directly with HF forwards.

Under greedy decoding a draft token is accepted iff it equals the target's argmax given
the same prefix, and after a rejection the target's token is kept, so the draft always
continues from the target's own greedy sequence. Agreement of draft argmax with target
argmax along target-greedy continuations is therefore the per-token acceptance rate, and
replaying it in windows of k gives the expected tokens per target forward pass.
"""
from __future__ import annotations


def target_greedy(target, prefixes, new_tokens: int):
    """Prefixes (N, P) -> target-greedy sequences (N, P + new_tokens), by a plain argmax loop."""
    import torch

    seq = prefixes
    with torch.no_grad():
        for _ in range(new_tokens):
            nxt = target(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
    return seq


def agreement(draft, sequences, prefix_len: int):
    """(N, new_tokens) bool: draft argmax == the target-greedy token at each continuation position."""
    import torch

    with torch.no_grad():
        pred = draft(input_ids=sequences[:, :-1]).logits.argmax(-1)
    return (pred[:, prefix_len - 1:] == sequences[:, prefix_len:])


def tokens_per_target_forward(match, k: int) -> float:
    """Replay greedy speculation with k draft tokens per step: mean tokens emitted per target forward."""
    total_tokens = total_steps = 0
    for row in match.tolist():
        i = 0
        while i < len(row):
            j = 0
            while j < k and i + j < len(row) and row[i + j]:
                j += 1
            total_steps += 1
            emitted = min(j + 1, len(row) - i)  # accepted tokens + the target's own next token
            total_tokens += emitted
            i += emitted
    return total_tokens / max(total_steps, 1)


def measure(draft, sequences, prefix_len: int, k: int) -> dict[str, float]:
    m = agreement(draft, sequences, prefix_len)
    return {"acceptance_rate": float(m.float().mean()), "tokens_per_target_forward": tokens_per_target_forward(m, k)}
