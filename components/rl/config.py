"""Configs of the RL stage: reward functions, GRPO, DPO and the Bradley-Terry reward model."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config import Config
from components.sft.config import LoRASettings


class RewardSpec(Config):
    """One reward function; a GRPO sample's reward is the weighted sum over the list."""

    kind: Literal["exact_match", "regex", "length", "token_f1", "copy_span", "citation", "reward_model", "callable"] = Field(
        description="exact_match: answer equals the prompt's 'answer'; regex: 1 if `pattern` matches the "
                    "completion start; length: closeness to `target_chars`; token_f1: word-overlap F1 of the "
                    "completion (citations removed) with 'answer' (partial credit for every right word); "
                    "copy_span: longest run of consecutive words shared with 'answer', as a fraction of its "
                    "words (rewards copying, not word soup); citation: 1 if the completion cites exactly the "
                    "prompt's 'citation' as [n], 0.5 if among others, 0 if not; reward_model: a Bradley-Terry "
                    "model at `path`; callable: `ref` = 'module:function' with signature f(completions, **kw).")
    weight: float = Field(1.0, description="Multiplier of this reward in the sum.")
    pattern: str | None = Field(None, description="regex: pattern matched (re.match) against the stripped completion.")
    target_chars: int | None = Field(None, ge=1, description="length: the completion length (characters) that scores 1.")
    path: str | None = Field(None, description="reward_model: directory of an rl.reward_model artifact (or its model/), "
                                               "or the artifact's store URI (s3://...; opened on the worker's node).")
    ref: str | None = Field(None, description="callable: 'package.module:function' importable on the workers.")

    @model_validator(mode="after")
    def _needs(self) -> RewardSpec:
        need = {"regex": "pattern", "length": "target_chars", "reward_model": "path", "callable": "ref"}.get(self.kind)
        if need and getattr(self, need) is None:
            raise ValueError(f"reward kind {self.kind!r} needs field {need!r}; set it in the reward entry")
        return self


# The prompt columns each reward kind reads (beyond the completions); rl.grpo checks them before it starts.
REWARD_COLUMNS = {"exact_match": ("answer",), "token_f1": ("answer",), "copy_span": ("answer",),
                  "citation": ("citation",)}


def default_rewards(columns: set[str]) -> list[RewardSpec]:
    """GRPO's rewards when the recipe names none, chosen by what the prompts carry.

    Grounded prompts (answer + citation, from sft.dataset's grounded task): token_f1 plus a small
    citation reward: the answer is in the prompt, so copying it earns partial credit from the first
    step. Prompts with an answer only (arithmetic, keyword): exact_match plus a number-format check.
    """
    if {"answer", "citation"} <= columns:
        return [RewardSpec(kind="token_f1"), RewardSpec(kind="citation", weight=0.2)]
    if "answer" in columns:
        return [RewardSpec(kind="exact_match"), RewardSpec(kind="regex", pattern=r"-?\d+\b", weight=0.5)]
    raise ValueError(f"prompts.jsonl rows carry {sorted(columns)}: the default rewards need 'answer' (and "
                     "'citation' for grounded prompts); set grpo.rewards to functions these prompts support")


class GRPOConfig(Config):
    """GRPO on a LoRA adapter with vLLM rollouts; the KL reference is the adapter it starts from."""

    lora: LoRASettings = Field(default_factory=LoRASettings, description="Adapter settings (ignored when an adapter input is given: it is trained further).")
    rewards: list[RewardSpec] | None = Field(None, description=(
        "Reward functions summed with their weights. None: chosen from the prompts' columns "
        "(default_rewards): token_f1 + 0.2 * citation for grounded prompts (answer + citation), "
        "exact_match + 0.5 * number format for answer-only prompts."))
    num_steps: int = Field(20, ge=1, description="GRPO steps (one rollout batch each).")
    prompts_per_step: int = Field(8, ge=1, description="Distinct prompts per step.")
    group_size: int = Field(8, ge=2, description="G: completions sampled per prompt; advantages are normalised within a group.")
    max_new_tokens: int = Field(16, ge=1, description="Completion length cap.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of rollouts.")
    top_k: int = Field(0, ge=0, description=(
        "Sample rollouts from the k most likely tokens only; 0: the whole vocabulary (TRL's top_k). A small "
        "model's long tail is mostly noise: on the e2e model pure temperature-0.7 sampling began 15% of "
        "answers with a citation where its greedy answer always cites."))
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling of rollouts: the smallest token set with this probability mass; 1: off.")
    truncated_reward: float | None = Field(None, description=(
        "The reward of a completion cut off at max_new_tokens (it never ended), in place of what the reward "
        "functions gave it (DAPO's overlong punishment); None: scored like any other. Word-overlap rewards "
        "pay a rambling completion for every word it happens to share with the answer: on the e2e model "
        "rollouts grew to the length cap in 6 steps and greedy answers became blank lines."))
    learning_rate: float = Field(5e-3, gt=0, description="AdamW learning rate of the adapter.")
    num_iterations: int = Field(1, ge=1, description="mu: optimisation passes over each rollout batch (>1 makes clipping bite).")
    minibatch_size: int = Field(32, ge=1, description="Sequences per gradient step within a pass.")
    clip_eps: float = Field(0.2, gt=0, description="PPO clip range epsilon on the importance ratio.")
    kl_beta: float = Field(0.02, ge=0, description="Weight of the k3 KL estimator to the reference model.")
    kl_reference: Literal["start", "base"] = Field("start", description=(
        "The KL term's reference. start: the adapter input, frozen (the SFT policy GRPO improves on); "
        "base: the base model (adapter disabled). Without an adapter input both are the base. On the e2e "
        "model the KL to the base pulled the policy toward the base's never-ending text: its greedy "
        "answers became repeated citations while the SFT adapter's were short quotes."))
    scale_rewards: bool = Field(True, description="Divide group-centred rewards by the group std (GRPO); False: Dr.GRPO-style centring only.")
    rollout_backend: Literal["vllm", "hf"] = Field("vllm", description=(
        "vllm: in-process vllm.LLM with weights reloaded in place; hf: transformers generate (slower; for comparison)."))
    sync_every: int = Field(1, ge=1, description="Push the learner's weights into the rollout engine every N steps.")
    vllm_max_model_len: int = Field(512, ge=32, description="vLLM max_model_len: prompt + completion must fit.")
    num_workers: int = Field(1, ge=1, description=(
        "Ray Train workers (DDP over the adapter). Rank 0 also owns the rollout engine and broadcasts each "
        "step's rollouts; every rank updates on its share of the sequences."))
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs Ray reserves per Train worker.")
    num_effect_steps: int | None = Field(None, ge=1, description=(
        "k: the stage's effect compares the rewards of the last k steps with the first k (reward_mean_first/"
        "last, reward_gain and its 95% bootstrap interval over prompt groups). None: a quarter of num_steps."))
    replay_opening_prompts: bool = Field(True, description=(
        "The last k steps sample the same prompts as the first k (fresh completions), so the effect compares "
        "the policy on the same prompts: a paired difference per prompt, whose interval is not widened by "
        "prompt-to-prompt variation (most of the variance of a group's mean reward). Needs 2k <= num_steps; "
        "False: the last k steps continue the shuffled order and the interval is over unpaired groups."))
    num_bootstrap: int = Field(2000, ge=100, description="Bootstrap resamples of the reward_gain interval.")
    seed: int = Field(0, description="Seed for prompt order, sampling, init and the bootstrap.")

    @property
    def effect_steps(self) -> int:
        """k, the length of the first and the last window the effect compares."""
        return min(self.num_effect_steps or max(1, self.num_steps // 4), self.num_steps)

    @property
    def replays(self) -> bool:
        """Whether the last k steps replay the first k steps' prompts (the windows must not overlap)."""
        return self.replay_opening_prompts and 2 * self.effect_steps <= self.num_steps

    @model_validator(mode="after")
    def _sync_needs_full_precision(self) -> GRPOConfig:
        if self.lora.quantize_4bit and self.rollout_backend == "vllm":
            raise ValueError("lora.quantize_4bit=True cannot sync merged weights into vLLM (the base is 4-bit); "
                             "set lora.quantize_4bit=false or rollout_backend='hf'")
        n = self.prompts_per_step * self.group_size
        if n % self.num_workers:
            raise ValueError(f"prompts_per_step * group_size = {n} sequences do not split evenly over num_workers="
                             f"{self.num_workers}: every rank must update on the same number; change one of them")
        return self


def _reject_pairs_file(data):
    """The prefs artifact has one file name now (components.artifacts.PREFERENCES_FILE)."""
    if isinstance(data, dict) and "pairs_file" in data:
        raise ValueError("'pairs_file' was removed: the prefs input is always read from preferences.jsonl "
                         "(as eval.feedback_prefs writes it); delete the key")
    return data


def _pairs_split_evenly(cfg):
    """DDP needs the same number of pairs on every rank each step."""
    if cfg.batch_size % cfg.num_workers:
        raise ValueError(f"batch_size={cfg.batch_size} does not split evenly over num_workers={cfg.num_workers}: "
                         "every rank must see the same number of pairs; change one of them")
    return cfg


class DPOConfig(Config):
    """DPO on a ``prefs`` artifact (components.artifacts) with a LoRA adapter; reference = the starting policy."""

    lora: LoRASettings = Field(default_factory=LoRASettings, description="Adapter settings.")
    beta: float = Field(0.1, gt=0, description="DPO temperature beta.")
    nll_weight: float = Field(0.0, ge=0, description=(
        "Weight of the chosen answers' per-token negative log-likelihood added to the DPO loss (RPO; TRL's "
        "rpo_alpha, 1.0 in the RPO paper). 0: plain DPO."))
    learning_rate: float = Field(2e-3, gt=0, description="AdamW learning rate of the adapter.")
    num_steps: int = Field(40, ge=1, description="Optimizer steps.")
    batch_size: int = Field(8, ge=1, description="Pairs per step.")
    max_seq_len: int = Field(256, ge=16, description="Truncate prompt+response to this many tokens.")
    eval_fraction: float = Field(0.2, ge=0, lt=1, description="Pairs held out to measure the chosen-over-rejected margin.")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (DDP over the adapter); each takes every "
                             "num_workers-th pair of a batch.")
    seed: int = Field(0, description="Seed for init and order.")

    @model_validator(mode="before")
    @classmethod
    def _no_pairs_file(cls, data):
        return _reject_pairs_file(data)

    @model_validator(mode="after")
    def _batch_splits(self) -> DPOConfig:
        return _pairs_split_evenly(self)


class RewardModelConfig(Config):
    """A Bradley-Terry reward model: the base LM with a scalar sequence-classification head."""

    learning_rate: float = Field(1e-3, gt=0, description="AdamW learning rate (whole model: it is small).")
    num_steps: int = Field(60, ge=1, description="Optimizer steps.")
    batch_size: int = Field(8, ge=1, description="Pairs per step.")
    max_seq_len: int = Field(256, ge=16, description="Truncate prompt+response to this many tokens.")
    eval_fraction: float = Field(0.2, ge=0, lt=1, description="Pairs held out for pairwise accuracy.")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (DDP); each takes every num_workers-th pair "
                             "of a batch.")
    seed: int = Field(0, description="Seed.")

    @model_validator(mode="before")
    @classmethod
    def _no_pairs_file(cls, data):
        return _reject_pairs_file(data)

    @model_validator(mode="after")
    def _batch_splits(self) -> RewardModelConfig:
        return _pairs_split_evenly(self)
