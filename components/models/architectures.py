"""The Hugging Face architectures llmflow imports, trains and serves: one table, read by ``models.import``
(which refuses anything else), by LoRA (which picks its target modules here) and by the README (whose
list ``supported_markdown()`` writes and tests/models/test_architectures.py compares).

An architecture is listed only when transformers (training, SFT/GRPO/DPO, distillation) and vLLM
(rollouts, serving) both implement it natively, so no step needs remote code. No imports here beyond
the standard library: recipe validation reads this table.
"""
from __future__ import annotations

from dataclasses import dataclass

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
SWIGLU = ("gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Architecture:
    name: str  # config.json "architectures"[0]: the transformers class and vLLM's registry key
    family: str
    moe: bool
    # LoRA targets by default: every linear layer of attention and the dense MLP. MoE experts are
    # fused 3-D tensors in transformers 5 (no nn.Linear per expert), so MoE models get attention
    # (plus a dense shared expert where the architecture has one), as PEFT users do by default.
    lora_targets: tuple[str, ...]


SUPPORTED: dict[str, Architecture] = {a.name: a for a in (
    Architecture("LlamaForCausalLM", "Llama 2/3, and llmflow's own presets", False, ATTENTION + SWIGLU),
    Architecture("MistralForCausalLM", "Mistral", False, ATTENTION + SWIGLU),
    Architecture("Qwen2ForCausalLM", "Qwen2, Qwen2.5", False, ATTENTION + SWIGLU),
    Architecture("Qwen3ForCausalLM", "Qwen3", False, ATTENTION + SWIGLU),
    Architecture("Gemma2ForCausalLM", "Gemma 2", False, ATTENTION + SWIGLU),
    Architecture("Phi3ForCausalLM", "Phi-3, Phi-3.5, Phi-4 (fused qkv and gate/up)", False,
                 ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")),
    Architecture("MixtralForCausalLM", "Mixtral (MoE), and llmflow's MoE preset", True, ATTENTION),
    Architecture("Qwen2MoeForCausalLM", "Qwen1.5-MoE, Qwen2-MoE (MoE with a shared expert)", True,
                 ATTENTION + tuple(f"shared_expert.{m}" for m in SWIGLU)),
    Architecture("Qwen3MoeForCausalLM", "Qwen3-MoE", True, ATTENTION),
)}


class UnsupportedArchitectureError(ValueError):
    """A model whose architecture is not in ``SUPPORTED``."""


def get(name: str | None) -> Architecture:
    if name not in SUPPORTED:
        raise UnsupportedArchitectureError(
            f"architecture {name!r} is not supported: llmflow imports models that transformers and vLLM both "
            f"implement natively, which are {', '.join(SUPPORTED)}; convert the model to one of them or add it "
            "to components/models/architectures.py with a test")
    return SUPPORTED[name]


def architecture_of(config) -> str | None:
    """The architecture name of a transformers config (or a config.json dict)."""
    archs = config.get("architectures") if isinstance(config, dict) else getattr(config, "architectures", None)
    return archs[0] if archs else None


def lora_targets(config) -> list[str]:
    """The default LoRA target modules for a model's config (``LoRASettings.target_modules`` overrides)."""
    return list(get(architecture_of(config)).lora_targets)


def supported_markdown() -> str:
    """The README's table of supported architectures (tests/models/test_architectures.py checks it)."""
    rows = ["| architecture (`config.json`) | models | MoE | default LoRA targets |", "|---|---|---|---|"]
    rows += [f"| `{a.name}` | {a.family} | {'yes' if a.moe else 'no'} | {', '.join(a.lora_targets)} |"
             for a in SUPPORTED.values()]
    return "\n".join(rows)
