"""Config of draft-model distillation."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from components.config import Config


class DraftDistillConfig(Config):
    """Train a small Llama draft on the target's next-token distribution (forward KL) over the token shards."""

    depth: int = Field(1, ge=1, description="Draft layers.")
    width: int | None = Field(None, ge=64, description="Draft hidden size (None: the target's with init_from_target, else half of it, at least 64). "
                                                         "Heads are 32 or 64 wide: vLLM's CPU attention rejects head_dim 16.")
    architecture: Literal["llama_preset", "target"] = Field("llama_preset", description=(
        "llama_preset: a Llama from llmflow's presets at `depth` (and `width`); target: the target's own "
        "architecture and config with `depth` layers (an imported Qwen2, Mistral or MoE model gets a draft of its "
        "kind, and with init_from_target every tensor of its first `depth` layers is copied: a true layer-drop "
        "init). Either way the draft keeps the target's vocabulary and tokenizer."))
    init_from_target: bool = Field(False, description=(
        "Start the draft from the target's embeddings, LM head, final norm and first `depth` layers "
        "(layer-drop init; needs width equal to the target's). Both drafts start from the same init."))
    num_steps: int = Field(200, ge=1, description="Optimizer steps (the data-only baseline gets the same).")
    batch_size: int = Field(8, ge=1, description="Blocks per step.")
    seq_len: int | None = Field(None, ge=8, description="Crop blocks to this many tokens (None: the shards' seq_len).")
    learning_rate: float = Field(3e-3, gt=0, description="AdamW peak learning rate (linear warmup, linear decay).")
    temperature: float = Field(1.0, gt=0, description="Softmax temperature of teacher and student in the KL.")
    ce_weight: float = Field(0.0, ge=0, description="Weight of plain next-token cross-entropy mixed into the KL (0: pure KL).")
    compare_data_only: bool = Field(True, description="Also train a same-size draft on the tokens alone and report both acceptance rates.")
    num_eval_prompts: int = Field(32, ge=1, description="Validation prefixes used to measure acceptance.")
    eval_prefix_len: int = Field(32, ge=1, description="Prefix tokens given to the target before its greedy continuation.")
    eval_new_tokens: int = Field(32, ge=1, description="Target-greedy tokens over which draft agreement is measured.")
    num_speculative_tokens: int = Field(4, ge=1, description="k for the reported expected tokens per target forward.")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (DDP over the draft); each takes every "
                             "num_workers-th block of a batch.")
    seed: int = Field(0, description="Seed for init and batch order (shared by both drafts).")

    @field_validator("width")
    @classmethod
    def _heads(cls, v: int | None) -> int | None:
        if v is not None and v % 32:
            raise ValueError(f"width={v} is not a multiple of 32; vLLM's CPU attention needs head_dim >= 32")
        return v

    @model_validator(mode="after")
    def _target_keeps_width(self) -> DraftDistillConfig:
        if self.architecture == "target" and self.width is not None:
            raise ValueError(f"width={self.width} with architecture: target: the draft takes the target's width; "
                             "drop width or set architecture: llama_preset")
        return self

    @model_validator(mode="after")
    def _batch_splits(self) -> DraftDistillConfig:
        if self.batch_size % self.num_workers:
            raise ValueError(f"batch_size={self.batch_size} does not split evenly over num_workers={self.num_workers}: "
                             "every rank must train on the same number of blocks; change one of them")
        return self
