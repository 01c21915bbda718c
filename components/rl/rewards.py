"""Reward functions: plain callables ``f(completions, **kw) -> list[float]`` (TRL's convention).

Keyword arguments carry per-sample columns of the prompt set (``prompts``, ``answer``, ...),
each a list aligned with ``completions``. ``build_rewards`` turns recipe entries into callables.
"""
from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence

from components.rl.config import RewardSpec

RewardFn = Callable[..., list[float]]
_NUMBER = re.compile(r"^\s*(-?\d+)")


def normalize_answer(text: str) -> str:
    """First line, lower-cased, surrounding punctuation and quotes stripped."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line.strip().strip(".\"'`").lower()


def exact_match(completions: Sequence[str], answer: Sequence[str], **_) -> list[float]:
    """1 if the completion's first line is the answer (a number prefix counts for numeric answers)."""
    out = []
    for c, a in zip(completions, answer):
        a = str(a).strip().lower()
        m = _NUMBER.match(c)
        hit = normalize_answer(c) == a or (m is not None and m.group(1) == a)
        out.append(1.0 if hit else 0.0)
    return out


def regex_reward(pattern: str) -> RewardFn:
    """1 if ``pattern`` matches at the start of the stripped completion (a format check)."""
    rx = re.compile(pattern)

    def regex_format(completions: Sequence[str], **_) -> list[float]:
        return [1.0 if rx.match(c.strip()) else 0.0 for c in completions]

    return regex_format


def length_reward(target_chars: int) -> RewardFn:
    """1 at exactly ``target_chars`` characters, falling linearly to 0 at 0 or twice the target."""

    def length(completions: Sequence[str], **_) -> list[float]:
        return [max(0.0, 1.0 - abs(len(c.strip()) - target_chars) / target_chars) for c in completions]

    return length


def build_rewards(specs: Sequence[RewardSpec]) -> list[tuple[str, float, RewardFn]]:
    """(name, weight, callable) for each recipe entry."""
    out = []
    for i, s in enumerate(specs):
        if s.kind == "exact_match":
            fn = exact_match
        elif s.kind == "regex":
            fn = regex_reward(s.pattern)
        elif s.kind == "length":
            fn = length_reward(s.target_chars)
        elif s.kind == "reward_model":
            from components.rl.reward_model import RewardModelScorer
            fn = RewardModelScorer(s.path)
        else:
            module, _, attr = s.ref.partition(":")
            if not attr:
                raise ValueError(f"rewards[{i}].ref={s.ref!r} must be 'package.module:function'")
            fn = getattr(importlib.import_module(module), attr)
        out.append((f"{s.kind}_{i}", s.weight, fn))
    return out


def score(rewards: Sequence[tuple[str, float, RewardFn]], completions: list[str], **columns) -> tuple[list[float], dict[str, float]]:
    """Weighted sum per completion, plus each function's mean (for logging)."""
    total = [0.0] * len(completions)
    means = {}
    for name, weight, fn in rewards:
        values = fn(completions, **columns)
        if len(values) != len(completions):
            raise ValueError(f"reward {name} returned {len(values)} values for {len(completions)} completions")
        means[f"reward/{name}"] = sum(values) / len(values)
        total = [t + weight * float(v) for t, v in zip(total, values)]
    return total, means
