"""Llama-architecture model presets sized by one dial: depth.

``build_config(depth)`` gives a ``transformers.LlamaConfig``: width = 64·depth (rounded to
a multiple of the head size), heads of 64 (32 for the tiniest), grouped-query attention
with a 4:1 query:kv ratio where it divides, SwiGLU FFN ≈ 8/3·width rounded to 64.
head_dim stays ≥ 32 everywhere: vLLM's CPU attention rejects 16.
"""
from __future__ import annotations

from transformers import LlamaConfig

# Named points on the depth dial. ~params are for a 32k vocabulary, untied embeddings.
PRESETS: dict[str, int] = {
    "debug": 2,     # CPU tests: a few million params at a small vocab
    "tiny": 4,
    "small": 8,
    "base": 12,     # ~125M class
    "medium": 20,   # ~350M class
    "large": 28,    # ~1B class
}


def build_config(depth: int, vocab_size: int, max_seq_len: int = 2048, tie_embeddings: bool = False,
                 width: int | None = None) -> LlamaConfig:
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    head_dim = 32 if depth <= 2 else 64
    width = width or max(head_dim * 2, 64 * depth)
    width = (width + head_dim - 1) // head_dim * head_dim
    num_heads = width // head_dim
    num_kv_heads = num_heads // 4 if num_heads % 4 == 0 and num_heads >= 8 else num_heads
    ffn = (int(width * 8 / 3) + 63) // 64 * 64
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=ffn,
        num_hidden_layers=depth,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=head_dim,
        max_position_embeddings=max_seq_len,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=tie_embeddings,
        hidden_act="silu",
    )


def preset_config(name: str, vocab_size: int, **kw) -> LlamaConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)} or set depth")
    return build_config(PRESETS[name], vocab_size, **kw)


def count_params(config: LlamaConfig, non_embedding: bool = False) -> int:
    """Parameter count computed from the config; matches ``sum(p.numel())`` of the built model."""
    d, f, L, V = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size
    hd = config.head_dim
    attn = d * config.num_attention_heads * hd * 2 + d * config.num_key_value_heads * hd * 2
    mlp = 3 * d * f
    per_layer = attn + mlp + 2 * d
    body = L * per_layer + d  # final norm
    if non_embedding:
        return body
    emb = V * d
    return body + emb + (0 if config.tie_word_embeddings else V * d)
