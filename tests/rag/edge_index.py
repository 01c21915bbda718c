"""Build small real Qdrant Edge indexes for tests, laid out as rag.index writes its artifact."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np

from components.rag.config import HnswConfig, SparseConfig
from components.rag.edge_store import EdgeStore, write_snapshot
from components.rag.sparse import doc_vector

DIMS = 16


def corpus(n: int, seed: int = 0, prefix: str = "doc"):
    """``n`` unit vectors, texts with a unique word each (``word<i>``) and shared topic words."""
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, DIMS)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    texts = [f"{prefix} topic{i % 7} word{i} shared" for i in range(n)]
    ids = [str(uuid.UUID(int=seed * 1_000_000 + i)) for i in range(n)]
    return ids, vecs, texts


def fill_shard(path: Path, n: int, seed: int = 0, prefix: str = "doc", hnsw: HnswConfig | None = None,
               sparse: SparseConfig | None = None):
    """A closed Edge shard at ``path`` holding ``corpus(n, seed, prefix)``; returns the corpus."""
    sparse = sparse or SparseConfig()
    ids, vecs, texts = corpus(n, seed, prefix)
    with EdgeStore.open(path, hnsw=hnsw) as store:
        store.ensure_collection(DIMS)
        for i in range(0, n, 256):
            store.upsert(ids[i:i + 256], vecs[i:i + 256], [doc_vector(t, sparse) for t in texts[i:i + 256]],
                         [{"doc_id": f"{prefix}-{j}", "hash": "", "text": t, "chunk_index": 0}
                          for j, t in zip(range(i, i + 256), texts[i:i + 256])])
        store.finish()
    return ids, vecs, texts


def write_meta(out: Path, dims: int, hnsw: HnswConfig) -> None:
    """index.json as rag.index writes it for an Edge shard (a fresh build_id each time)."""
    write_snapshot(out / "shard", out / "shard.snapshot")
    (out / "index.json").write_text(json.dumps({
        "collection": "c", "dims": dims, "backend": "edge", "location": "shard", "snapshot": "shard.snapshot",
        "sparse": SparseConfig().model_dump(), "hnsw": hnsw.model_dump(), "build_id": uuid.uuid4().hex}))


def write_artifact(out: Path, n: int, seed: int = 0, prefix: str = "doc", hnsw: HnswConfig | None = None):
    """A rag.index-shaped artifact (index.json, shard/, shard.snapshot) at ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    hnsw = hnsw or HnswConfig()
    corpus_ = fill_shard(out / "shard", n, seed, prefix, hnsw)
    write_meta(out, DIMS, hnsw)
    return corpus_


def write_docs_artifact(out: Path, docs: dict[str, str], vecs) -> None:
    """A rag.index-shaped artifact holding one chunk per document (``doc_id -> text``) with the given
    dense vectors (e.g. real MiniLM embeddings of the texts)."""
    out.mkdir(parents=True, exist_ok=True)
    sparse, hnsw = SparseConfig(), HnswConfig()
    with EdgeStore.open(out / "shard", hnsw=hnsw) as store:
        store.ensure_collection(vecs.shape[1])
        store.upsert([str(uuid.uuid4()) for _ in docs], vecs, [doc_vector(t, sparse) for t in docs.values()],
                     [{"doc_id": d, "title": d, "source": "test", "text": t, "hash": "", "chunk_index": 0}
                      for d, t in docs.items()])
        store.finish()
    write_meta(out, vecs.shape[1], hnsw)
