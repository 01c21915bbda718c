"""Llama-architecture model presets sized by one dial: depth (plus a Mixtral-style MoE variant).

``build_config(depth)`` gives a ``transformers.LlamaConfig``: width = 64·depth (rounded to
a multiple of the head size), heads of 64 (32 for the tiniest), grouped-query attention
with a 4:1 query:kv ratio where it divides, SwiGLU FFN ≈ 8/3·width rounded to 64.
head_dim stays ≥ 32 everywhere: vLLM's CPU attention rejects 16.

``build_moe_config(depth)`` gives a ``transformers.MixtralConfig`` with the same attention
shape and ``num_experts`` SwiGLU experts per layer, ``experts_per_token`` of them active.

``count_params`` computes the parameter count from the config alone (tests check it against
the instantiated model); ``count_params(..., active=True)`` counts only the experts a token
uses, which is what the FLOP count of an MoE model needs.
"""
from __future__ import annotations

from transformers import LlamaConfig, MixtralConfig, PretrainedConfig

from components.models.sizes import PRESETS

MIN_HEAD_DIM = 32  # vLLM's CPU attention rejects head_dim 16


def _attention_shape(depth: int, width: int | None) -> tuple[int, int, int, int, int]:
    """(width, heads, kv_heads, head_dim, ffn) for a depth; the one place the dial is turned."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    head_dim = MIN_HEAD_DIM if depth <= 2 else 64
    width = width or max(head_dim * 2, 64 * depth)
    if width < head_dim:
        raise ValueError(f"width must be >= {head_dim} (head_dim) at depth {depth}, got {width}")
    width = (width + head_dim - 1) // head_dim * head_dim
    num_heads = width // head_dim
    num_kv_heads = num_heads // 4 if num_heads % 4 == 0 and num_heads >= 8 else num_heads
    ffn = (int(width * 8 / 3) + 63) // 64 * 64
    return width, num_heads, num_kv_heads, head_dim, ffn


def build_config(depth: int, vocab_size: int, max_seq_len: int = 2048, tie_embeddings: bool = False,
                 width: int | None = None) -> LlamaConfig:
    width, num_heads, num_kv_heads, head_dim, ffn = _attention_shape(depth, width)
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


def build_moe_config(depth: int, vocab_size: int, max_seq_len: int = 2048, tie_embeddings: bool = False,
                     width: int | None = None, num_experts: int = 4, experts_per_token: int = 2,
                     expert_ffn: int | None = None, router_aux_loss_coef: float = 0.01) -> MixtralConfig:
    """A Mixtral-style MoE: Llama attention, ``num_experts`` SwiGLU experts, top-k routing.

    Each expert's FFN defaults to the dense FFN divided by ``experts_per_token``, so the
    active FLOPs per token match the dense preset of the same depth (a fair comparison).
    """
    if not 1 <= experts_per_token <= num_experts:
        raise ValueError(f"experts_per_token must be in [1, num_experts={num_experts}], got {experts_per_token}")
    width, num_heads, num_kv_heads, head_dim, ffn = _attention_shape(depth, width)
    expert_ffn = expert_ffn or max(64, (ffn // experts_per_token + 63) // 64 * 64)
    return MixtralConfig(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=expert_ffn,
        num_hidden_layers=depth,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=head_dim,
        max_position_embeddings=max_seq_len,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=tie_embeddings,
        hidden_act="silu",
        num_local_experts=num_experts,
        num_experts_per_tok=experts_per_token,
        output_router_logits=True,  # adds the load-balancing loss to the LM loss in training
        router_aux_loss_coef=router_aux_loss_coef,
    )


def preset_config(name: str, vocab_size: int, **kw) -> LlamaConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)} or set depth")
    return build_config(PRESETS[name], vocab_size, **kw)


def is_moe(config: PretrainedConfig) -> bool:
    return getattr(config, "num_local_experts", 0) > 0


def count_params(config: PretrainedConfig, non_embedding: bool = False, active: bool = False) -> int:
    """Parameter count computed from the config; matches ``sum(p.numel())`` of the built model.

    ``non_embedding`` drops the token embedding and LM head (the usual N of scaling laws);
    ``active`` counts only ``experts_per_token`` experts per MoE layer (FLOPs per token).
    """
    d, f, L, V = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size
    hd = config.head_dim
    attn = d * config.num_attention_heads * hd * 2 + d * config.num_key_value_heads * hd * 2
    if is_moe(config):
        experts = config.num_experts_per_tok if active else config.num_local_experts
        mlp = experts * 3 * d * f + config.num_local_experts * d  # experts + router
    else:
        mlp = 3 * d * f
    per_layer = attn + mlp + 2 * d
    body = L * per_layer + d  # final norm
    if non_embedding:
        return body
    emb = V * d
    return body + emb + (0 if config.tie_word_embeddings else V * d)
