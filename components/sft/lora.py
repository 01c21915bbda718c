"""Load a base causal LM and wrap it in a PEFT LoRA adapter (QLoRA on GPU)."""
from __future__ import annotations

from pathlib import Path

from components.sft.config import LoRASettings


def load_base(model_dir: str | Path, quantize_4bit: bool = False, dtype=None):
    import torch
    from transformers import AutoModelForCausalLM

    from components.train.device import train_device, use_gpu

    if quantize_4bit:
        # bitsandbytes' 4-bit kernels are CUDA kernels: there is no CPU path to fall back to.
        if not use_gpu():
            raise ValueError("lora.quantize_4bit=True (QLoRA) needs a CUDA GPU and bitsandbytes; "
                             "this machine has no GPU: set lora.quantize_4bit=false to train plain LoRA")
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError as e:
            raise ValueError("lora.quantize_4bit=True needs bitsandbytes: pip install bitsandbytes") from e
        bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                 bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_use_double_quant=True)
        from peft import prepare_model_for_kbit_training
        model = AutoModelForCausalLM.from_pretrained(model_dir, quantization_config=bnb,
                                                     device_map={"": train_device()})
        return prepare_model_for_kbit_training(model)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype or torch.float32)
    return model.to(train_device())


def add_lora(model, lora: LoRASettings, adapter_dir: str | Path | None = None):
    """Wrap ``model`` with a fresh adapter, or with the trainable adapter saved at ``adapter_dir``."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if adapter_dir is not None:
        return PeftModel.from_pretrained(model, adapter_dir, is_trainable=True)
    cfg = LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                     target_modules=target_modules(model, lora), task_type="CAUSAL_LM", bias="none")
    return get_peft_model(model, cfg)


def target_modules(model, lora: LoRASettings) -> list[str]:
    """The recipe's target modules, else the defaults of the model's architecture (its class when a
    model built in memory has no ``config.architectures`` yet)."""
    from components.models.architectures import get

    if lora.target_modules is not None:
        return list(lora.target_modules)
    return list(get((model.config.architectures or [type(model).__name__])[0]).lora_targets)


def export_merged(peft_model, tokenizer, out_dir: str | Path) -> Path:
    """Fold the adapter into a copy of the base weights and save a plain HF model dir."""
    import copy

    merged = copy.deepcopy(peft_model).merge_and_unload()
    out_dir = Path(out_dir)
    merged.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir
