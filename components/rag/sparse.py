"""BM25 sparse vectors for Qdrant hybrid search.

Two encoders, picked by ``SparseConfig.encoder``: Qdrant's own BM25 (``qdrant_edge.Bm25``: English
stopwords, Snowball stemming, the term ids a Qdrant server's ``qdrant/bm25`` model uses) and the
older hashed encoder below. Both follow the same scheme: the document side stores BM25's saturated term frequency
``tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))``; the collection's sparse vector has
``Modifier.IDF`` so Qdrant multiplies each query term by its IDF over the live collection at
query time. A query vector is 1.0 per distinct term. Terms map to uint32 indices by a stable
hash (blake2b), so vectors never depend on a vocabulary built from the corpus and a chunk's
vector does not change when other documents change — the property idempotent re-indexing needs.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from functools import lru_cache

from components.rag.config import SparseConfig

_WORD = re.compile(r"[a-z0-9_]+")
# The commonest English function words: they carry no signal and would dominate long chunks.
STOPWORDS = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "do", "does", "for", "from", "had", "has", "have", "if", "in", "into", "is", "it", "its", "may", "not", "of", "on", "or", "so", "such", "than", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "were", "when", "which", "will", "with", "would", "you", "your"])


def words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1]


def term_index(term: str) -> int:
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=4).digest(), "little")


@lru_cache(maxsize=8)
def _qdrant_bm25(k1: float, b: float, avg_len: float):
    from qdrant_edge import Bm25, Bm25Config

    return Bm25(Bm25Config(k=k1, b=b, avg_len=avg_len, language="english"))


def doc_vector(text: str, config: SparseConfig) -> tuple[list[int], list[float]]:
    if config.encoder == "qdrant_bm25":
        v = _qdrant_bm25(config.k1, config.b, config.avg_doc_tokens).embed_document(text)
        return list(v.indices), list(v.values)
    tokens = words(text)
    counts = Counter(term_index(t) for t in tokens)
    norm = config.k1 * (1 - config.b + config.b * len(tokens) / config.avg_doc_tokens)
    indices = sorted(counts)
    return indices, [counts[i] * (config.k1 + 1) / (counts[i] + norm) for i in indices]


def query_vector(text: str, config: SparseConfig | None = None) -> tuple[list[int], list[float]]:
    """1.0 per distinct query term. ``config`` is the index's sparse config (None = the hashed encoder)."""
    if config is not None and config.encoder == "qdrant_bm25":
        v = _qdrant_bm25(config.k1, config.b, config.avg_doc_tokens).embed_query(text)
        return list(v.indices), list(v.values)
    indices = sorted({term_index(t) for t in words(text)})
    return indices, [1.0] * len(indices)
