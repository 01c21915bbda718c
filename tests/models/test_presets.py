"""Presets: the depth dial, head_dim >= 32, and a parameter count that matches the real model."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from components.models.config import PRESETS, ModelConfig
from components.models.presets import (
    build_config,
    build_moe_config,
    count_params,
    preset_config,
)


def _instantiated_params(config) -> tuple[int, int]:
    with torch.device("meta"):  # shapes only: counting a 1B model costs nothing
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())  # tied weights are counted once
    embedding = model.get_input_embeddings().weight.numel()
    if not config.tie_word_embeddings:
        embedding += model.get_output_embeddings().weight.numel()
    return total, total - embedding


@pytest.mark.parametrize("depth,tie", [(1, False), (2, True), (4, False), (12, True), (28, False)])
def test_count_params_matches_dense_model(depth, tie):
    config = build_config(depth, vocab_size=4096, tie_embeddings=tie)
    total, non_embedding = _instantiated_params(config)
    assert count_params(config) == total
    assert count_params(config, non_embedding=True) == non_embedding


@pytest.mark.parametrize("experts,k", [(4, 2), (8, 1)])
def test_count_params_matches_moe_model(experts, k):
    config = build_moe_config(2, vocab_size=4096, num_experts=experts, experts_per_token=k)
    total, non_embedding = _instantiated_params(config)
    assert count_params(config) == total
    assert count_params(config, non_embedding=True) == non_embedding
    # Only k experts run per token: the active count drops exactly (experts - k) expert FFNs per layer.
    expert_ffn = 3 * config.hidden_size * config.intermediate_size
    assert count_params(config, non_embedding=True, active=True) == \
        non_embedding - config.num_hidden_layers * (experts - k) * expert_ffn


@pytest.mark.parametrize("depth", range(1, 33))
def test_every_depth_has_vllm_compatible_heads(depth):
    config = build_config(depth, vocab_size=2048)
    assert config.head_dim >= 32
    assert config.num_attention_heads * config.head_dim == config.hidden_size
    assert config.num_attention_heads % config.num_key_value_heads == 0


def test_named_presets_span_cpu_to_1b():
    sizes = {name: count_params(preset_config(name, vocab_size=32000), non_embedding=True) for name in PRESETS}
    assert sizes["debug"] < 2e6
    assert 60e6 < sizes["base"] < 150e6
    assert 250e6 < sizes["medium"] < 450e6
    assert 0.8e9 < sizes["large"] < 1.4e9
    assert list(sizes.values()) == sorted(sizes.values())


def test_model_config_builds_dense_and_moe():
    assert ModelConfig(preset="tiny").build(2048, 128).num_hidden_layers == PRESETS["tiny"]
    moe = ModelConfig(depth=2, moe=True, num_experts=4, experts_per_token=2).build(2048, 128)
    assert moe.model_type == "mixtral" and moe.num_local_experts == 4


def test_model_config_rejects_more_active_experts_than_experts():
    with pytest.raises(ValueError, match="experts_per_token"):
        ModelConfig(moe=True, num_experts=2, experts_per_token=3)
