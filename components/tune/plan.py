"""Turn a sweep config into the list of trials to train: (shape, N, D, steps) per point.

IsoFLOP: for each budget C and shape of N parameters, D = C / (6N) tokens, rounded to
whole optimizer steps. Grid: every shape × every D. Points whose step count falls outside
[min_trial_steps, max_trial_steps] are left out and listed with the reason, never silently.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from components.tune.config import ModelShape, SweepConfig


@dataclass(frozen=True)
class Trial:
    """One training run of the sweep; ``num_tokens`` is what it really trains (whole steps)."""

    name: str
    depth: int
    width: int
    num_params: int
    num_tokens: int
    num_steps: int
    budget_flops: float | None  # the nominal IsoFLOP budget this trial belongs to (None in grid mode)
    learning_rate: float
    seed: int

    @property
    def flops(self) -> float:
        return 6.0 * self.num_params * self.num_tokens

    def to_dict(self) -> dict:
        return asdict(self)


def shape_params(shape: ModelShape, vocab_size: int, seq_len: int, count_embedding: bool) -> tuple[int, int]:
    """(width, N) of a shape, N from the same config the trial builds."""
    from components.models.presets import build_config, count_params

    cfg = build_config(shape.depth, vocab_size, max_seq_len=seq_len, width=shape.width)
    return cfg.hidden_size, count_params(cfg, non_embedding=not count_embedding)


def make_trial(config: SweepConfig, depth: int, width: int, num_params: int, tokens: float,
               budget: float | None, tokens_per_step: int, tag: str) -> Trial:
    steps = max(1, round(tokens / tokens_per_step))
    return Trial(name=f"{tag}-d{depth}w{width}", depth=depth, width=width, num_params=num_params,
                 num_tokens=steps * tokens_per_step, num_steps=steps, budget_flops=budget,
                 learning_rate=config.learning_rate, seed=config.seed)


def plan_trials(config: SweepConfig, vocab_size: int, seq_len: int) -> tuple[list[Trial], list[str]]:
    """All trials of the sweep and, for each point left out, why."""
    tokens_per_step = config.batch_size * seq_len
    sizes = [(s.depth, *shape_params(s, vocab_size, seq_len, config.count_embedding_params)) for s in config.shapes]
    points: list[tuple[float, float | None, str]] = []  # (tokens, budget, tag)
    if config.mode == "isoflop":
        for c in config.budgets_flops:
            points += [(c / (6.0 * n), c, f"C{c:.3g}") for _, _, n in sizes]
    else:
        points = [(d, None, f"D{d:.3g}") for d in config.tokens_grid for _ in sizes]
    trials, skipped = [], []
    for i, (tokens, budget, tag) in enumerate(points):
        depth, width, n = sizes[i % len(sizes)]
        trial = make_trial(config, depth, width, n, tokens, budget, tokens_per_step, tag)
        if not config.min_trial_steps <= trial.num_steps <= config.max_trial_steps:
            skipped.append(f"{trial.name}: {trial.num_steps} steps is outside [min_trial_steps={config.min_trial_steps}, "
                           f"max_trial_steps={config.max_trial_steps}]")
            continue
        trials.append(trial)
    if not trials:
        raise ValueError(f"no trial of sweep {config.name!r} fits the step limits: {'; '.join(skipped)}. "
                         "Change budgets_flops/tokens_grid, shapes, batch_size or min_trial_steps/max_trial_steps")
    return trials, skipped
