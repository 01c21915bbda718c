"""SFT config validation and the QLoRA-on-CPU error."""
import pytest
from pydantic import ValidationError

from components.sft.config import LoRASettings, SFTConfig


def test_defaults_validate_and_unknown_fields_fail():
    assert SFTConfig().lora.rank == 8
    with pytest.raises(ValidationError):
        SFTConfig(lora_rank=4)


def test_qlora_cannot_merge():
    with pytest.raises(ValidationError, match="merge"):
        SFTConfig(merge=True, lora=LoRASettings(quantize_4bit=True))


def test_empty_targets_rejected():
    with pytest.raises(ValidationError, match="target_modules"):
        LoRASettings(target_modules=[])


def test_qlora_on_cpu_is_a_clear_error(tiny_model_dir):
    import torch

    from components.sft.lora import load_base

    if torch.cuda.is_available():
        pytest.skip("has a GPU: QLoRA is allowed here")
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        load_base(tiny_model_dir, quantize_4bit=True)
