"""Query-time retrieval: embed the query, search Qdrant (dense or hybrid RRF), optionally rerank.

Every hit carries two scores: ``score`` ranks (cosine for dense search, RRF for hybrid) and
``relevance`` is the exact cosine between query and chunk embeddings — comparable across
queries, so the router's threshold means the same thing whatever the fusion did.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from components.rag.config import RetrievalConfig


@dataclass
class Source:
    id: str
    doc_id: str
    title: str
    source: str
    text: str
    chunk_index: int
    score: float
    relevance: float

    def to_dict(self, with_text: bool = False) -> dict:
        d = asdict(self)
        if not with_text:
            d.pop("text")
        return d


def read_index_meta(index_dir: str | Path) -> dict:
    path = Path(index_dir) / "index.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the index input must be a rag.index artifact")
    return json.loads(path.read_text())


def open_index(index_dir: str | Path, *, read_only: bool = True, timeout_s: float = 5.0, lock_wait_s: float = 10.0,
               reload_s: float | None = None):
    """Open the store a ``rag.index`` artifact describes. Embedded indexes open read-only as a private
    copy (Edge: its snapshot unpacked). ``reload_s``: check the artifact that often for a rebuilt
    index and swap to it atomically (:class:`components.rag.live_index.LiveIndex`; Edge only)."""
    from components.rag.config import HnswConfig, SparseConfig
    from components.rag.qdrant_store import QdrantStore, open_store, server_url

    index_dir = Path(index_dir)
    meta = read_index_meta(index_dir)
    backend = meta["backend"]
    if backend == "edge" and read_only and reload_s:
        from components.rag.live_index import LiveIndex

        return LiveIndex(index_dir, lambda: open_index(index_dir, read_only=True), check_every_s=reload_s)
    hnsw = HnswConfig(**meta["hnsw"]) if "hnsw" in meta else None
    if backend == "edge":
        snapshot = index_dir / meta["snapshot"] if read_only and meta.get("snapshot") else None
        store = open_store(index_dir / meta["location"], meta["collection"], embedded="edge", hnsw=hnsw,
                           read_only=read_only, snapshot=snapshot)
    elif backend == "local":
        store = QdrantStore.open(index_dir / "qdrant", meta["collection"], read_only=read_only,
                                 timeout_s=timeout_s, lock_wait_s=lock_wait_s)
    else:
        # A server index: the artifact records where it was built; QDRANT_URL says where to reach it now.
        url = server_url()
        if not url:
            raise RuntimeError(f"index {index_dir} lives on a Qdrant server ({meta['location']}); set QDRANT_URL "
                               "(and QDRANT_API_KEY) to reach it")
        store = QdrantStore.open(None, meta["collection"], url=url, timeout_s=timeout_s, hnsw=hnsw)
    # artifacts from before the Qdrant BM25 encoder carry no 'encoder': theirs was the hashed one
    store.sparse_config = SparseConfig(**{"encoder": "hashed", **meta.get("sparse", {})})
    return store


class Retriever:
    def __init__(self, store, embedder, config: RetrievalConfig):
        self.store, self.embedder, self.config = store, embedder, config

    def embed(self, query: str) -> np.ndarray:
        return self.embedder.embed([query])[0]

    def search(self, query: str, vector: np.ndarray | None = None, mode: str | None = None,
               top_k: int | None = None, prefetch_k: int | None = None) -> list[Source]:
        from components.rag.sparse import query_vector

        cfg = self.config
        mode, top_k, prefetch_k = mode or cfg.mode, top_k or cfg.top_k, prefetch_k or cfg.prefetch_k
        if vector is None:
            vector = self.embed(query)
        # rerank needs the whole candidate pool; without it, only top_k come back
        k = prefetch_k if cfg.rerank == "dense" else top_k
        if mode == "dense":
            hits = self.store.search_dense(vector, k, with_vectors=True)
        else:
            sparse = query_vector(query, getattr(self.store, "sparse_config", None))  # the index's encoder
            hits = self.store.search_hybrid(vector, sparse, k, prefetch_k, with_vectors=True, fusion=cfg.fusion)
        sources = [Source(id=h.id, doc_id=str(h.payload.get("doc_id", "")), title=str(h.payload.get("title", "")),
                          source=str(h.payload.get("source", "")), text=str(h.payload.get("text", "")),
                          chunk_index=int(h.payload.get("chunk_index", 0)), score=h.score,
                          relevance=float(np.dot(np.asarray(h.dense, dtype=np.float32), vector)) if h.dense else h.score)
                   for h in hits]
        if cfg.rerank == "dense":
            sources.sort(key=lambda s: s.relevance, reverse=True)
        return sources[:top_k]

    def timed_search(self, query: str) -> tuple[list[Source], dict[str, float]]:
        t0 = time.perf_counter()
        vector = self.embed(query)
        t1 = time.perf_counter()
        sources = self.search(query, vector=vector)
        return sources, {"embed_ms": (t1 - t0) * 1e3, "search_ms": (time.perf_counter() - t1) * 1e3}
