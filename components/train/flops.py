"""Training FLOPs per token and model FLOP utilisation (MFU).

FLOPs per token = 6·N + 12·L·d·T, where N is the non-embedding parameter count (for an
MoE, only the experts a token is routed to), L the layers, d the attention width
(heads·head_dim), T the sequence length. 6·N covers forward + backward matmuls
(2 FLOPs per multiply-add, backward twice the forward); 12·L·d·T the attention score and
value products (PaLM appendix B, Chinchilla). Embedding lookups are free; the LM-head
matmul (6·d·V) is left out, as in the baselines we compare with, so small-vocabulary
numbers are comparable and large-vocabulary ones slightly conservative.

MFU = tokens/s × FLOPs per token / (devices × peak FLOP/s of one device), the peak coming
from ``components.train.device.peak_flops`` (dense bf16 tensor-core rate; none on CPU).
"""
from __future__ import annotations

from components.models.presets import count_params


def flops_per_token(config, seq_len: int) -> float:
    n = count_params(config, non_embedding=True, active=True)
    attn_width = config.num_attention_heads * config.head_dim
    return 6.0 * n + 12.0 * config.num_hidden_layers * attn_width * seq_len


def mfu(tokens_per_s: float, config, seq_len: int, num_devices: int, peak_flops: float | None) -> float | None:
    if not peak_flops:
        return None
    return tokens_per_s * flops_per_token(config, seq_len) / (num_devices * peak_flops)
