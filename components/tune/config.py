"""Config of a scaling sweep (step kind ``tune.sweep``): what to train, how, and what to fit.

Light on purpose: importing this must not import torch, Ray or scipy (recipe validation).
Budgets are in FLOPs with the usual C = 6·N·D approximation; N counts non-embedding
parameters by default (Kaplan et al. 2020: cleaner laws at small scale, where the
embedding would otherwise dominate the count).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config import Config


class ModelShape(Config):
    """One point on the model-size axis: a Llama preset of this depth and width."""

    depth: int = Field(ge=1, description="Number of decoder layers (the preset dial in components/models/presets.py).")
    width: int | None = Field(default=None, ge=32, description="Hidden size; None = the preset's 64·depth.")

    @property
    def label(self) -> str:
        return f"d{self.depth}w{self.width or 'auto'}"


class LrSearchConfig(Config):
    """Optional learning-rate search before the sweep: per model shape, ASHA over ``learning_rates``.

    One Tuner per shape, at the smallest budget: ASHA compares trials at equal progress,
    which is only fair between trials of the same model size and token count.
    """

    RENAMED = {"lrs": "learning_rates"}

    learning_rates: list[float] = Field(default=[1e-3, 3e-3, 1e-2], min_length=2,
                                        description="Peak learning rates to try for every model shape.")
    grace_period: int = Field(default=1, ge=1, description="ASHA: reports a trial survives before it can be stopped.")
    reduction_factor: int = Field(default=2, ge=2, description="ASHA: keep 1/reduction_factor of trials per rung.")


def _default_shapes() -> list[ModelShape]:
    # The smallest Llamas the presets make (head_dim ≥ 32): ~16k–110k non-embedding parameters.
    return [ModelShape(depth=1, width=32), ModelShape(depth=2, width=32), ModelShape(depth=1, width=64),
            ModelShape(depth=1, width=96)]


class SweepConfig(Config):
    """A scaling sweep: IsoFLOP profiles or an N×D grid, each trial a short pretraining run."""

    RENAMED = {"lr": "learning_rate", "min_lr_frac": "min_lr_ratio",
               "min_steps": "min_trial_steps", "max_steps": "max_trial_steps"}

    name: str = Field(default="scaling", description="Sweep name: the Tune experiment name and the prefix of trial runs.")
    mode: Literal["isoflop", "grid"] = Field(
        default="isoflop",
        description="isoflop: for each budget C every shape trains on D = C/(6N) tokens; grid: every shape × every D.")
    budgets_flops: list[float] = Field(
        default=[1e10, 2e10],
        description="isoflop mode: compute budgets C in FLOPs (C = 6·N·D). At least 2; 3+ for confidence intervals.")
    tokens_grid: list[float] = Field(
        default=[1e5, 2e5, 4e5], description="grid mode: training-token counts D to pair with every shape.")
    shapes: list[ModelShape] = Field(
        default_factory=_default_shapes, min_length=3,
        description="Model sizes to train (depth, width). A parabola per budget needs 3+ sizes that fit the step limits.")
    count_embedding_params: bool = Field(
        default=False, description="Count embedding and LM-head parameters in N (Chinchilla) instead of non-embedding N (Kaplan).")
    batch_size: int = Field(default=8, ge=1, description="Sequences per optimizer step (tokens/step = batch_size·seq_len).")
    learning_rate: float = Field(default=1e-2, gt=0, description="Peak learning rate (AdamW), used when lr_search is off.")
    warmup_frac: float = Field(default=0.05, ge=0, lt=1, description="Fraction of each trial's steps spent in linear warmup.")
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1,
                                description="Cosine decay ends at learning_rate·min_lr_ratio; the schedule spans each trial's own length.")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")
    min_trial_steps: int = Field(default=20, ge=1, description="Trials that would train fewer steps are left out (too short to mean anything).")
    max_trial_steps: int = Field(default=5000, ge=1, description="Trials that would train more steps are left out (too costly for this sweep).")
    num_reports: int = Field(default=2, ge=1, description="Validation evaluations per trial (evenly spaced; the last at the end).")
    eval_blocks: int = Field(default=32, ge=1, description="Validation sequences per evaluation (the same ones for every trial).")
    seed: int = Field(default=0, description="Seed for model init and data order (same for every trial).")
    cpus_per_trial: float = Field(default=1, gt=0, description="Ray CPUs per trial; torch uses max(1, int(this)) threads.")
    max_concurrent_trials: int | None = Field(
        default=2, ge=1, description="Trials run at once; None = as many as the cluster's CPUs allow.")
    lr_search: LrSearchConfig | None = Field(
        default=None, description="If set, pick each shape's learning rate by ASHA at the smallest budget first.")
    predict_budget_flops: float | None = Field(
        default=None, gt=0, description="Budget to extrapolate the laws to; None = 10× the largest swept budget (or C of the largest grid point).")
    holdout: bool = Field(
        default=True,
        description="Train one held-out run at the predicted budget (shape nearest the predicted N_opt) and report its loss vs the prediction.")
    holdout_budget_flops: float | None = Field(
        default=None, gt=0, description="Budget of the held-out run; None = 1.5× the largest swept budget (above the sweep, cheap enough to run).")
    num_bootstrap: int = Field(default=200, ge=0, description="Bootstrap resamples for confidence intervals (0 = none).")
    ci_level: float = Field(default=0.9, gt=0, lt=1, description="Two-sided confidence level of the bootstrap intervals.")
    huber_delta: float = Field(default=1e-3, gt=0, description="Huber delta on log-loss residuals of the parametric fit (Hoffmann et al. use 1e-3).")
    storage_path: str | None = Field(
        default=None,
        description="Where Tune keeps the experiment (local dir or URI shared by all nodes); it is what Tuner.restore resumes. "
                    "None = ~/.cache/llmflow/tune.")
    resume: bool = Field(default=True, description="Resume an interrupted sweep of the same name and settings with Tuner.restore.")

    @model_validator(mode="after")
    def _check(self) -> SweepConfig:
        problems = []
        if self.mode == "isoflop" and len(self.budgets_flops) < 2:
            problems.append(f"budgets_flops={self.budgets_flops}: isoflop mode needs at least 2 budgets to fit N_opt(C); add budgets")
        if self.mode == "grid" and len(self.tokens_grid) < 2:
            problems.append(f"tokens_grid={self.tokens_grid}: grid mode needs at least 2 token counts; add values")
        if any(b <= 0 for b in self.budgets_flops) or any(d <= 0 for d in self.tokens_grid):
            problems.append("budgets_flops and tokens_grid must be positive numbers")
        if self.min_trial_steps > self.max_trial_steps:
            problems.append(f"min_trial_steps={self.min_trial_steps} > max_trial_steps={self.max_trial_steps}; "
                            "lower min_trial_steps or raise max_trial_steps")
        if len({(s.depth, s.width) for s in self.shapes}) != len(self.shapes):
            problems.append("shapes lists the same (depth, width) twice; remove the duplicate")
        if problems:
            raise ValueError("; ".join(problems))
        return self
