"""Greedy acceptance maths: agreement along target-greedy continuations and tokens per target forward."""
import pytest
import torch

from components.distill.acceptance import (
    measure,
    target_greedy,
    tokens_per_target_forward,
)
from components.distill.config import DraftDistillConfig


def test_tokens_per_forward_replays_speculation():
    assert tokens_per_target_forward(torch.ones(1, 8, dtype=torch.bool), k=4) == pytest.approx(8 / 2)
    assert tokens_per_target_forward(torch.zeros(1, 8, dtype=torch.bool), k=4) == 1.0
    # accept 2, reject -> 3 tokens; then accept 4 (full window) -> 5 tokens.
    m = torch.tensor([[1, 1, 0, 1, 1, 1, 1, 1]], dtype=torch.bool)
    assert tokens_per_target_forward(m, k=4) == pytest.approx(8 / 2)


def test_target_as_its_own_draft_accepts_everything(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    target = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    seq = target_greedy(target, torch.randint(0, 100, (2, 5)), new_tokens=6)
    assert seq.shape == (2, 11)
    assert measure(target, seq, prefix_len=5, k=4)["acceptance_rate"] == 1.0


def test_width_must_keep_head_dim_32():
    with pytest.raises(ValueError, match="head_dim"):
        DraftDistillConfig(width=80)


def test_init_from_target_needs_matching_width(tiny_model_dir):
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    from components.distill.draft import draft_config, init_from_target

    target = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    same = LlamaForCausalLM(draft_config(target.config, DraftDistillConfig(depth=1, init_from_target=True)))
    init_from_target(same, target)
    assert torch.equal(same.model.layers[0].mlp.up_proj.weight, target.model.layers[0].mlp.up_proj.weight)
    narrow = LlamaForCausalLM(draft_config(target.config, DraftDistillConfig(depth=1, width=64)))
    with pytest.raises(ValueError, match="width"):
        init_from_target(narrow, target)
