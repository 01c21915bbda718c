"""Reward functions: plain callables ``f(completions, **kw) -> list[float]`` (TRL's convention).

Keyword arguments carry per-sample columns of the prompt set (``prompts``, ``answer``,
``citation``, ...), each a list aligned with ``completions``; a row without a column gets None.
``build_rewards`` turns recipe entries into callables.
"""
from __future__ import annotations

import importlib
import re
from collections import Counter
from collections.abc import Callable, Sequence

from components.grounded import cited_numbers, longest_common_span_words, without_citations, words
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


def _f1(prediction: list[str], reference: list[str]) -> float:
    if not prediction or not reference:
        return float(prediction == reference)
    common = sum((Counter(prediction) & Counter(reference)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(prediction), common / len(reference)
    return 2 * precision * recall / (precision + recall)


def token_f1(completions: Sequence[str], answer: Sequence[str], **_) -> list[float]:
    """Word-overlap F1 of each completion (citation markers removed) with its answer, in [0, 1].

    Partial credit for every right word; precision falls when the completion rambles past the answer.
    """
    return [_f1(words(without_citations(c)), words(str(a))) if a is not None else 0.0
            for c, a in zip(completions, answer)]


def copy_span(completions: Sequence[str], answer: Sequence[str], **_) -> list[float]:
    """The longest run of consecutive words a completion shares with its answer, over the answer's words."""
    out = []
    for c, a in zip(completions, answer):
        n = len(words(str(a))) if a is not None else 0
        out.append(longest_common_span_words(c, str(a)) / n if n else 0.0)
    return out


def citation(completions: Sequence[str], citation: Sequence[int | None], **_) -> list[float]:
    """1 if the completion cites exactly the gold source [n], 0.5 if it cites it among others, else 0."""
    out = []
    for c, gold in zip(completions, citation):
        cited = cited_numbers(c)
        out.append(0.0 if gold is None or int(gold) not in cited else 1.0 if cited == [int(gold)] else 0.5)
    return out


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
        elif s.kind in ("token_f1", "copy_span", "citation"):
            fn = {"token_f1": token_f1, "copy_span": copy_span, "citation": citation}[s.kind]
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
