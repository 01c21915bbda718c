"""A step's effect: the change it made, measured against its own baseline.

A stage that ran without error has not necessarily done anything: a pretrained model whose loss
is the corpus's unigram entropy, a GRPO run whose reward never moved. A step reports what it
changed with ``StepContext.report_effect`` (value, baseline, which way is better, the margin that
counts as an effect); a kind names the effects it must show (``step_kind(effects=...)``). The
runner prints each effect beside the headline metric, logs it to the step's run, and warns (with
``strict: true`` in the recipe: fails the step) when a declared effect is missing or too small.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Effect:
    name: str
    value: float
    baseline: float
    higher_is_better: bool
    # The gain (value over baseline, in the better direction) must exceed this to count.
    min_margin: float = 0.0
    baseline_name: str = "baseline"
    # 95% confidence interval of the gain, when the step measured its spread; its low end must be > 0.
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def gain(self) -> float:
        return (self.value - self.baseline) * (1.0 if self.higher_is_better else -1.0)

    @property
    def shown(self) -> bool:
        if not (math.isfinite(self.value) and math.isfinite(self.baseline)):
            return False
        return self.gain > self.min_margin and (self.ci_low is None or self.ci_low > 0)

    def describe(self) -> str:
        ci = f", 95% CI [{self.ci_low:.3g}, {self.ci_high:.3g}]" if self.ci_low is not None else ""
        verdict = "✓" if self.shown else f"✗ needs gain > {self.min_margin:.3g}" + (" and CI > 0" if ci else "")
        return (f"{self.name} {self.value:.4g} vs {self.baseline_name} {self.baseline:.4g}: "
                f"gain {self.gain:+.3g}{ci} {verdict}")

    def metrics(self) -> dict[str, float]:
        out = {f"effect.{self.name}.value": self.value, f"effect.{self.name}.baseline": self.baseline,
               f"effect.{self.name}.gain": self.gain, f"effect.{self.name}.shown": float(self.shown)}
        if self.ci_low is not None:
            out[f"effect.{self.name}.ci_low"] = self.ci_low
            out[f"effect.{self.name}.ci_high"] = float(self.ci_high if self.ci_high is not None else math.nan)
        return out

    def to_json(self) -> dict:
        return asdict(self)


def problems(declared: Iterable[str], reported: Iterable[Effect]) -> list[str]:
    """Why a step's effects are absent: each declared effect missing, each reported one too small."""
    by_name = {e.name: e for e in reported}
    out = [f"effect {name!r} was not measured" for name in declared if name not in by_name]
    out += [f"no effect: {e.describe()}" for e in by_name.values() if not e.shown]
    return out
