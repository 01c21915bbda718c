"""Retrieval evaluation on a labelled query set derived from the corpus itself.

Each query is made from one document: a sentence of it, cut to its first ``query_words``
content words (stopwords and one-letter tokens dropped) — the keyword-style question a user
who half-remembers a passage would type. Its label is the source document; retrieval is scored
at document level (chunks of one document collapse to its best rank): recall@k, MRR and
nDCG@10 (one relevant document per query, so ideal DCG = 1).
"""
from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

from components.rag.sparse import words

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


@dataclass(frozen=True)
class LabelledQuery:
    query: str
    doc_id: str


def derive_queries(docs: Iterable[tuple[str, str]], num_queries: int, query_words: int, seed: int) -> list[LabelledQuery]:
    """At most one query per document, from ``num_queries`` documents sampled with ``seed``."""
    rng = random.Random(seed)
    candidates = []
    for doc_id, text in docs:
        sentences = [s for s in _SENTENCE.split(text) if len(words(s)) >= query_words]
        if sentences:
            candidates.append((doc_id, sentences))
    candidates.sort(key=lambda c: c[0])
    rng.shuffle(candidates)
    queries = []
    for doc_id, sentences in candidates[:num_queries]:
        sentence = rng.choice(sentences)
        queries.append(LabelledQuery(query=" ".join(words(sentence)[:query_words]), doc_id=doc_id))
    return queries


def doc_rank(ranked_doc_ids: list[str], target: str) -> int | None:
    """1-based rank of ``target`` among distinct documents in ranking order, or None if absent."""
    seen: list[str] = []
    for d in ranked_doc_ids:
        if d not in seen:
            seen.append(d)
            if d == target:
                return len(seen)
    return None


def score_ranks(ranks: list[int | None], ks: list[int]) -> dict[str, float]:
    n = max(len(ranks), 1)
    out = {f"recall_at_{k}": sum(1 for r in ranks if r is not None and r <= k) / n for k in ks}
    out["mrr"] = sum(1.0 / r for r in ranks if r is not None) / n
    out["ndcg_at_10"] = sum(1.0 / math.log2(r + 1) for r in ranks if r is not None and r <= 10) / n
    return out
