"""GRPO's KL reference is the frozen starting adapter: it stays what the run started from while the
trained adapter moves, the trained adapter stays trainable, and the saved model holds only it."""
import pytest
import torch


@pytest.fixture()
def start_adapter(tmp_path):
    """A tiny Llama base and a LoRA adapter with non-zero B (so start != base), saved like SFT saves it."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64)
    base = LlamaForCausalLM(cfg)
    base.save_pretrained(tmp_path / "base")
    sft = get_peft_model(LlamaForCausalLM.from_pretrained(tmp_path / "base"),
                         LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        for n, p in sft.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    sft.save_pretrained(tmp_path / "sft")
    return tmp_path / "base", tmp_path / "sft"


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def test_reference_is_the_starting_adapter_while_training_moves(start_adapter, tmp_path):
    from transformers import LlamaForCausalLM

    from components.sft.config import LoRASettings
    from components.sft.lora import REFERENCE, add_lora, drop_reference, load_reference, reference_model

    base_dir, sft_dir = start_adapter
    ids = torch.tensor([[1, 5, 9, 17, 33, 2]])
    model = add_lora(LlamaForCausalLM.from_pretrained(base_dir), LoRASettings(), adapter_dir=sft_dir)
    start = _logits(model, ids)
    with model.disable_adapter():
        base = _logits(model, ids)
    assert not torch.allclose(start, base, atol=1e-3)  # the starting adapter is not the base

    load_reference(model, sft_dir)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(REFERENCE not in n for n, p in model.named_parameters() if p.requires_grad)

    opt = torch.optim.SGD(trainable, lr=1.0)
    for _ in range(3):
        model(ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
        with reference_model(model):
            assert torch.allclose(_logits(model, ids), start, atol=1e-5)  # the reference did not move
        # back on the trained adapter, still trainable, with the same parameters the optimiser holds
        assert [p for p in model.parameters() if p.requires_grad] == trainable
    assert not torch.allclose(_logits(model, ids), start, atol=1e-3)  # the trained adapter did

    drop_reference(model)
    model.save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out" / REFERENCE).exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["README.md", "adapter_config.json",
                                                                    "adapter_model.safetensors"]


def test_without_a_reference_adapter_the_reference_is_the_base(start_adapter):
    from transformers import LlamaForCausalLM

    from components.sft.config import LoRASettings
    from components.sft.lora import add_lora, reference_model

    base_dir, sft_dir = start_adapter
    ids = torch.tensor([[1, 5, 9, 17, 33, 2]])
    model = add_lora(LlamaForCausalLM.from_pretrained(base_dir), LoRASettings(), adapter_dir=sft_dir)
    with reference_model(model):
        ref = _logits(model, ids)
    assert torch.allclose(ref, _logits(LlamaForCausalLM.from_pretrained(base_dir), ids), atol=1e-5)
