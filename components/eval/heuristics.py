"""Cheap per-response scores that need no model: run on every sampled request.

``groundedness`` is the share of answer content words found in the retrieved context —
a lexical stand-in for RAG faithfulness that the judge refines on the judged subset.
"""
from __future__ import annotations

import re

from components.grounded import longest_common_span_words

_WORD = re.compile(r"[A-Za-z0-9_']+")
_REFUSAL = re.compile(
    r"\b(i can(?:no|')t (?:help|answer|assist)|i(?:'m| am) (?:sorry|unable)|i do(?:n't| not) know|"
    r"as an ai|cannot (?:help|answer|assist) with|not able to (?:help|answer))\b", re.IGNORECASE)
_STOP = frozenset(["a", "an", "the", "of", "to", "in", "and", "or", "is", "are", "was", "be", "for", "on", "with", "as", "by", "it", "this", "that", "at", "from"])


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.search(text)) or not text.strip()


def repetition_rate(text: str, n: int = 3) -> float:
    """Share of repeated word n-grams (degenerate loops score near 1)."""
    w = words(text)
    grams = [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]
    return 0.0 if not grams else 1 - len(set(grams)) / len(grams)


def groundedness(answer: str, context: str) -> float | None:
    content = [w for w in words(answer) if w not in _STOP]
    if not content or not context:
        return None
    ctx = set(words(context))
    return sum(w in ctx for w in content) / len(content)


def heuristic_scores(query: str, response: str, context: str = "") -> dict[str, float]:
    out = {
        "response_words": float(len(words(response))),
        "query_words": float(len(words(query))),
        "refusal": float(is_refusal(response)),
        "repetition": repetition_rate(response),
    }
    g = groundedness(response, context)
    if g is not None:
        out["groundedness"] = g
    return out


def longest_shared_span(answer: str, sources: list[str]) -> int:
    """Length in words of the longest run of consecutive answer words that one of the sources also has in
    a row (``components.grounded.longest_common_span_words`` over each): a span of 5 or more words means
    the answer quotes its source, not just shares its vocabulary."""
    return max((longest_common_span_words(answer, source) for source in sources), default=0)
