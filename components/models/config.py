"""The model section of a recipe: a preset name or a depth, optionally MoE. Imports nothing heavy."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config import Config
from components.models.sizes import PRESETS


class ModelConfig(Config):
    preset: Literal["debug", "tiny", "small", "base", "medium", "large"] | None = Field(
        None, description="Named depth (debug=2, tiny=4, small=8, base=12, medium=20, large=28); "
                          "leave null and set `depth` to pick any depth.")
    depth: int = Field(2, ge=1, le=64, description="Number of decoder layers; sizes width (64·depth), "
                                                   "heads and FFN. Ignored when `preset` is set.")
    width: int | None = Field(None, ge=32, description="Override the hidden size (rounded to head_dim); "
                                                       "null = 64·depth.")
    tie_embeddings: bool = Field(False, description="Share the token embedding with the LM head.")
    moe: bool = Field(False, description="Build a Mixtral-style mixture-of-experts model instead of dense Llama.")
    num_experts: int = Field(4, ge=2, description="Experts per MoE layer (only with moe: true).")
    experts_per_token: int = Field(2, ge=1, description="Experts each token is routed to (only with moe: true).")
    max_position_embeddings: int = Field(
        2048, ge=16, description="Context length the model advertises (RoPE: no learned positions); raised to "
                                 "the training seq_len if that is longer. Serving caps max_model_len here.")

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.moe and self.experts_per_token > self.num_experts:
            raise ValueError(f"experts_per_token={self.experts_per_token} exceeds num_experts={self.num_experts}; "
                             "lower experts_per_token or raise num_experts")
        return self

    @property
    def resolved_depth(self) -> int:
        return PRESETS[self.preset] if self.preset else self.depth

    def build(self, vocab_size: int, max_seq_len: int):
        """The transformers config (LlamaConfig or MixtralConfig) for sequences up to ``max_seq_len``."""
        from components.models import presets

        depth = self.resolved_depth
        max_seq_len = max(max_seq_len, self.max_position_embeddings)
        if self.moe:
            return presets.build_moe_config(depth, vocab_size, max_seq_len=max_seq_len,
                                            tie_embeddings=self.tie_embeddings, width=self.width,
                                            num_experts=self.num_experts,
                                            experts_per_token=self.experts_per_token)
        return presets.build_config(depth, vocab_size, max_seq_len=max_seq_len,
                                    tie_embeddings=self.tie_embeddings, width=self.width)
