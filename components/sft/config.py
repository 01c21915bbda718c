"""Configs of the SFT stage: the instruction dataset, LoRA settings, and the SFT trainer."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from components.config import Config


class SFTDatasetConfig(Config):
    """Instruction data derived from the ``docs`` artifact, plus optional user chat JSONL."""

    max_answer_chars: int = Field(320, ge=40, description="Cut answers (the topic's first sentences) to this many characters.")
    max_answer_sentences: int = Field(2, ge=1, description="Answers are the first N sentences of a topic's first prose paragraph.")
    eval_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction of documents held out (by id hash) for eval.jsonl.")
    grounded_share: float = Field(0.75, ge=0.0, le=0.95, description=(
        "Share of sft.jsonl chats that are grounded: the RAG router's own prompt (numbered sources + question, "
        "components.grounded.grounded_prompt) -> '[n] ' + the answer quoted from that gold source. The "
        "rest are plain question -> answer chats (every training question once). 0 turns grounded chats off."))
    max_distractors: int = Field(2, ge=0, description=(
        "Each grounded prompt holds the gold passage and 1..max_distractors passages of other training "
        "documents, in shuffled positions (0: the gold alone)."))
    passage_chars: int = Field(500, ge=100, description=(
        "A source passage is whole paragraphs (raw text, line breaks kept), cut where the index's chunker "
        "cuts, to at most this many characters (the gold keeps its whole answer): about one 128-token index "
        "chunk, what retrieval hands the router."))
    max_source_chars: int = Field(1500, ge=50, description=(
        "Each source is cut to this in the prompt, as the router's RouterConfig.max_source_chars (same default)."))
    max_context_chars: int = Field(1000, ge=200, description=(
        "Distractors beyond this many source characters in total are trimmed at a word (' …') or dropped, as "
        "the router's context budget trims its lowest-ranked sources; the gold passage is never cut. Measured "
        "on the stdlib docs with the e2e flow's 2k BPE: grounded chats of median ~400 tokens, 2% over 512 "
        "(the served context), where 1,200 put 11% over."))
    grpo_tasks: list[Literal["grounded", "arithmetic", "keyword"]] = Field(
        default_factory=lambda: ["grounded"], description=(
            "Prompt sets written to prompts.jsonl for GRPO. grounded: router-format prompts from the training "
            "questions, with columns answer + citation (rl.grpo's default rewards: token_f1 + citation, partial "
            "credit for copying the gold source); arithmetic / keyword: exact answers ('What is 3 + 4?', 'Which "
            "statement is this?') that a small pretrained model neither knows nor can copy, so exact_match "
            "stays 0 there."))
    num_arithmetic_prompts: int = Field(256, ge=0, description="GRPO prompts with checkable numeric answers ('What is 3 + 4?'), when grpo_tasks has 'arithmetic'.")
    max_operand: int = Field(20, ge=1, description="Arithmetic prompts use operands in [0, max_operand].")
    user_chat_paths: list[str] = Field(default_factory=list, description=(
        "Extra chat JSONL files ({'messages': [{'role','content'}, ...]}) appended to sft.jsonl; "
        "every record must end with an assistant turn."))
    seed: int = Field(0, description="Seed for the arithmetic prompts, distractor draws and shuffling.")

    @field_validator("grpo_tasks")
    @classmethod
    def _some_task(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("grpo_tasks is empty: list at least one of grounded, arithmetic, keyword")
        return v


class LoRASettings(Config):
    """PEFT LoRA hyper-parameters shared by SFT, GRPO and DPO."""

    rank: int = Field(8, ge=1, description="LoRA rank r.")
    alpha: float = Field(16.0, gt=0, description="LoRA alpha; the update is scaled by alpha / rank.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: list[str] | None = Field(None, description=(
        "Module names that get LoRA adapters (PEFT's target_modules). None: chosen by the base model's "
        "architecture (components/models/architectures.py: every attention and dense MLP projection; attention "
        "(and a shared expert) on MoE models)."))
    quantize_4bit: bool = Field(False, description=(
        "QLoRA: load the base in 4-bit NF4 via bitsandbytes. GPU only; on CPU the step fails with an error."))

    @field_validator("target_modules")
    @classmethod
    def _non_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("target_modules is empty; list at least one module name such as 'q_proj'")
        return v


class SFTConfig(Config):
    """LoRA SFT with response-only loss, run under Ray Train's TorchTrainer."""

    RENAMED = {"max_steps": "num_steps"}

    lora: LoRASettings = Field(default_factory=LoRASettings, description="LoRA adapter settings.")
    learning_rate: float = Field(2e-3, gt=0, description="AdamW learning rate for the adapter weights.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    num_epochs: float = Field(1.0, gt=0, description="Passes over sft.jsonl (fractions allowed); num_steps wins if set.")
    num_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (None: run num_epochs).")
    batch_size: int = Field(8, ge=1, description="Sequences per worker per step.")
    max_seq_len: int = Field(256, ge=16, description="Truncate chat sequences to this many tokens.")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (DDP over gloo on CPU).")
    eval_every: int = Field(0, ge=0, description="Log held-out response loss every N steps (0: only before and after).")
    num_eval_examples: int = Field(64, ge=1, description="Examples from eval split (or sft.jsonl tail) used for response loss.")
    merge: bool = Field(False, description="Also export merged/ (base + adapter folded in) as a plain HF model.")
    min_gain_vs_base: float = Field(0.05, ge=0, description=(
        "The effect SFT must show: held-out response loss (nats/token) of the adapter below the base model's "
        "by more than this; less is a warning, or a failed step under the recipe's strict: true."))
    seed: int = Field(0, description="Seed for init and data order.")

    @model_validator(mode="after")
    def _qlora_no_merge(self) -> SFTConfig:
        if self.merge and self.lora.quantize_4bit:
            raise ValueError("merge=True with lora.quantize_4bit=True would fold into a 4-bit base; "
                             "set merge=False and merge later on a full-precision base")
        return self
