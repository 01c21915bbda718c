"""The supported-architecture table: every entry builds in transformers with its LoRA targets present, is
in the pinned vLLM's registry, and is the list the README shows."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from components.models import architectures
from components.models.architectures import SUPPORTED

README = Path(__file__).resolve().parents[2] / "README.md"
MODEL_TYPES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2",
               "Qwen3ForCausalLM": "qwen3", "Gemma2ForCausalLM": "gemma2", "Phi3ForCausalLM": "phi3",
               "MixtralForCausalLM": "mixtral", "Qwen2MoeForCausalLM": "qwen2_moe",
               "Qwen3MoeForCausalLM": "qwen3_moe"}


def test_every_supported_architecture_has_a_model_type_here():
    assert set(MODEL_TYPES) == set(SUPPORTED)


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_transformers_builds_it_and_lora_finds_every_default_target(name):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    moe = {"num_local_experts": 4, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 64,
           "shared_expert_intermediate_size": 64} if SUPPORTED[name].moe else {}
    cfg = AutoConfig.for_model(MODEL_TYPES[name], vocab_size=256, hidden_size=64, intermediate_size=128,
                               num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                               pad_token_id=0, bos_token_id=1, eos_token_id=2, **moe)
    model = AutoModelForCausalLM.from_config(cfg)
    assert type(model).__name__ == name
    linear = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    for target in SUPPORTED[name].lora_targets:
        assert any(n == target or n.endswith("." + target) for n in linear), (name, target)
    from components.sft.config import LoRASettings
    from components.sft.lora import target_modules

    peft = get_peft_model(model, LoraConfig(r=2, target_modules=target_modules(model, LoRASettings())))
    assert peft(torch.tensor([[3, 4, 5]])).logits.shape == (1, 3, 256)


def test_recipe_target_modules_override_the_architecture_default(hf_model_dirs):
    from transformers import AutoModelForCausalLM

    from components.sft.config import LoRASettings
    from components.sft.lora import add_lora

    model = AutoModelForCausalLM.from_pretrained(hf_model_dirs["qwen2"])
    peft = add_lora(model, LoRASettings(target_modules=["q_proj", "v_proj"]))
    assert sorted(peft.peft_config["default"].target_modules) == ["q_proj", "v_proj"]
    wrapped = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in peft.named_parameters() if ".lora_A" in n}
    assert wrapped == {"q_proj", "v_proj"}


def test_an_unknown_architecture_names_every_supported_one():
    with pytest.raises(architectures.UnsupportedArchitectureError) as e:
        architectures.get("BloomForCausalLM")
    assert all(name in str(e.value) for name in SUPPORTED)


@pytest.mark.integration
def test_the_pinned_vllm_implements_every_supported_architecture():
    from vllm.model_executor.models import ModelRegistry

    assert set(SUPPORTED) <= set(ModelRegistry.get_supported_archs())


def test_the_readme_lists_exactly_the_supported_architectures():
    text = README.read_text()
    match = re.search(r"<!-- supported-architectures:start -->\n(.*?)\n<!-- supported-architectures:end -->", text, re.DOTALL)
    assert match, "README.md lost its supported-architectures block"
    assert match.group(1).strip() == architectures.supported_markdown(), (
        "README.md's architecture table is stale: paste components.models.architectures.supported_markdown()")
