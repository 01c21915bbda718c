"""Load a base causal LM and wrap it in a PEFT LoRA adapter (QLoRA on GPU)."""
from __future__ import annotations

import contextlib
from pathlib import Path

from components.sft.config import LoRASettings

REFERENCE = "reference"  # the frozen adapter a KL term is measured against (load_reference)


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


def load_reference(peft_model, adapter_dir: str | Path) -> None:
    """Load the adapter at ``adapter_dir`` a second time, frozen, as the KL reference of
    :func:`reference_model`; the trainable adapter stays active. Call it before wrapping the model in DDP,
    so DDP never sees the reference's (frozen) parameters."""
    peft_model.load_adapter(str(adapter_dir), adapter_name=REFERENCE, is_trainable=False)
    peft_model.set_adapter("default")


@contextlib.contextmanager
def reference_model(peft_model):
    """Run the body as the KL reference: the frozen starting adapter when :func:`load_reference` loaded
    one, else the base (adapter disabled). TRL's DPO does the same with its ``ref_adapter_name``."""
    if REFERENCE not in peft_model.peft_config:
        with peft_model.disable_adapter():
            yield
        return
    active = peft_model.active_adapter
    peft_model.set_adapter(REFERENCE, inference_mode=True)  # freezes every other adapter too
    try:
        yield
    finally:
        peft_model.set_adapter(active)  # the trainable adapter is active and trainable again


def drop_reference(peft_model) -> None:
    """Remove the reference adapter, so a saved model holds only the trained one."""
    if REFERENCE in peft_model.peft_config:
        peft_model.delete_adapter(REFERENCE)


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
