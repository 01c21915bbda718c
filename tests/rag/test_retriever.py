"""Retriever logic (relevance scores, rerank, mode choice) over a fake store and embedder."""
import numpy as np

from components.rag.config import RetrievalConfig
from components.rag.qdrant_store import Hit
from components.rag.retriever import Retriever


class FakeEmbedder:
    def embed(self, texts):
        return np.array([[1.0, 0.0]] * len(texts), dtype=np.float32)


class FakeStore:
    """Fused order a, b, c; their dense vectors make c the most similar to the query."""

    def __init__(self):
        self.calls = []
        self.hits = [Hit("a", 0.5, {"doc_id": "A", "title": "ta", "text": "x"}, [0.0, 1.0]),
                     Hit("b", 0.33, {"doc_id": "B", "title": "tb", "text": "y"}, [0.6, 0.8]),
                     Hit("c", 0.25, {"doc_id": "C", "title": "tc", "text": "z"}, [1.0, 0.0])]

    def search_hybrid(self, vector, sparse, k, prefetch_k, with_vectors=False, fusion=None):
        self.calls.append(("hybrid", k, prefetch_k, bool(sparse[0])))
        return self.hits[:k]

    def search_dense(self, vector, k, with_vectors=False):
        self.calls.append(("dense", k))
        return self.hits[:k]


def test_relevance_is_cosine_and_rank_keeps_fusion_order():
    store = FakeStore()
    out = Retriever(store, FakeEmbedder(), RetrievalConfig(top_k=2, prefetch_k=5)).search("assert statement")
    assert [s.id for s in out] == ["a", "b"] and [s.relevance for s in out] == [0.0, np.float32(0.6)]
    assert out[0].score == 0.5 and out[0].doc_id == "A"
    assert store.calls == [("hybrid", 2, 5, True)]


def test_dense_rerank_reorders_the_candidate_pool():
    store = FakeStore()
    out = Retriever(store, FakeEmbedder(), RetrievalConfig(top_k=2, prefetch_k=3, rerank="dense")).search("q words")
    assert [s.id for s in out] == ["c", "b"]
    assert store.calls == [("hybrid", 3, 3, True)]  # the whole pool was fetched before cutting to top_k


def test_dense_mode_and_timings():
    store = FakeStore()
    r = Retriever(store, FakeEmbedder(), RetrievalConfig(mode="dense", top_k=1, prefetch_k=1))
    sources, timings = r.timed_search("anything")
    assert store.calls == [("dense", 1)] and len(sources) == 1 and set(timings) == {"embed_ms", "search_ms"}
