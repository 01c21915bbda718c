"""Index a ``docs`` artifact into Qdrant with Ray Data: chunk → embed (actors) → upsert, idempotently.

A point's id is a UUID5 of (document hash, chunk index, index fingerprint), where the document
hash covers the document's id, title, source and text, and the fingerprint covers the chunking,
sparse and model settings. So re-indexing the same documents produces the same ids (nothing is
re-embedded), a changed document produces new ids (its old chunks are deleted), a deleted
document's chunks are deleted, and a change of chunking settings re-indexes everything.

Writes go through the driver (the step's process): local-mode Qdrant allows one process per
path, and Ray Data's parallelism is spent where the time goes, in the embedding actors.
"""
from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any

import numpy as np

from components.artifacts import Docs
from components.rag.config import ChunkingConfig, IndexConfig, SparseConfig

_NAMESPACE = uuid.UUID("5b0c3a47-3f9e-4a8e-9a43-6f3c2d1e0b7a")
PAYLOAD_FIELDS = ("doc_id", "source", "title", "text", "hash", "chunk_index", "start_char", "end_char")


def doc_hash(doc_id: str, title: str, source: str, text: str) -> str:
    return hashlib.sha256(json.dumps([doc_id, title, source, text]).encode()).hexdigest()[:32]


def index_fingerprint(chunking: ChunkingConfig, sparse: SparseConfig, model: str) -> str:
    blob = json.dumps([chunking.model_dump(), sparse.model_dump(), model], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def point_id(hash_: str, chunk_index: int, fingerprint: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{hash_}:{chunk_index}:{fingerprint}"))


def chunk_batch(batch: dict[str, np.ndarray], chunking: dict, sparse: dict, model_dir: str,
                fingerprint: str) -> dict[str, list]:
    """Ray Data ``map_batches`` function: documents in, one row per chunk out (with sparse vectors)."""
    from components.rag.chunking import chunk_text, load_tokenizer
    from components.rag.sparse import doc_vector

    chunking_config, sparse_config = ChunkingConfig(**chunking), SparseConfig(**sparse)
    tokenizer = load_tokenizer(model_dir)
    out: dict[str, list] = {k: [] for k in ("id", *PAYLOAD_FIELDS, "sparse_indices", "sparse_values")}
    for doc_id, title, source, text in zip(batch["id"], batch["title"], batch["source"], batch["text"]):
        h = doc_hash(str(doc_id), str(title), str(source), str(text))
        for c in chunk_text(str(text), chunking_config, tokenizer):
            si, sv = doc_vector(c.text, sparse_config)
            row = {"id": point_id(h, c.index, fingerprint), "doc_id": str(doc_id), "source": str(source),
                   "title": str(title), "text": c.text, "hash": h, "chunk_index": c.index,
                   "start_char": c.start_char, "end_char": c.end_char,
                   "sparse_indices": np.asarray(si, dtype=np.int64), "sparse_values": np.asarray(sv, dtype=np.float32)}
            for k, v in row.items():
                out[k].append(v)
    return out


class EmbedNew:
    """Ray Data actor: embeds the chunks whose id is not in the collection yet; passes the rest through.

    The model loads on the first new chunk, so re-indexing an unchanged corpus loads nothing.
    Rows already indexed get a zero vector and ``is_new = False``; the driver skips them.
    """

    def __init__(self, existing: frozenset, batch_size: int):
        self.existing, self.batch_size, self.embedder = existing, batch_size, None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from components.rag.embed import DIMS, Embedder

        is_new = np.array([i not in self.existing for i in batch["id"]], dtype=bool)
        dense = np.zeros((len(is_new), DIMS), dtype=np.float32)
        if is_new.any():
            if self.embedder is None:
                self.embedder = Embedder(batch_size=self.batch_size)
            dense[is_new] = self.embedder.embed(list(batch["text"][is_new]))
        batch["is_new"], batch["dense"] = is_new, dense
        return batch


def index_documents(docs: Docs, store, config: IndexConfig, log=None, progress=None) -> dict[str, Any]:
    """Bring ``store``'s collection in line with the documents; returns counts and timings.

    ``store`` is an open, writable :class:`components.rag.qdrant_store.QdrantStore`.
    ``log(metrics, step)`` receives progress (upsert batches); ``progress(iterable, desc=...)``
    wraps the batch loop (``ctx.progress`` in a step).
    """
    import ray.data
    from ray.data import ActorPoolStrategy

    from components.rag.embed import DIMS, MODEL_NAME, model_dir

    t0 = time.perf_counter()
    fingerprint = index_fingerprint(config.chunking, config.sparse, MODEL_NAME)
    created = store.ensure_collection(DIMS)
    existing = frozenset(store.point_ids())

    num_docs = docs.num_docs() if config.max_docs is None else min(docs.num_docs(), config.max_docs)
    rows = ray.data.read_parquet([str(p) for p in docs.shards], columns=list(Docs.COLUMNS))
    if config.max_docs is not None:
        rows = rows.limit(config.max_docs)
    # One pass: chunk (tasks) → embed the new chunks (actors) → upsert from here (the one writer).
    pipeline = rows.map_batches(chunk_batch, batch_format="numpy", batch_size=16, fn_kwargs=dict(
        chunking=config.chunking.model_dump(), sparse=config.sparse.model_dump(), model_dir=model_dir(),
        fingerprint=fingerprint)).map_batches(
        EmbedNew, batch_format="numpy", batch_size=config.embed_batch_size,
        fn_constructor_kwargs={"existing": existing, "batch_size": config.embed_batch_size},
        compute=ActorPoolStrategy(size=config.embed_concurrency), num_cpus=1, num_gpus=config.embed_num_gpus)
    wanted: set[str] = set()
    num_upserted = 0
    batches = pipeline.iter_batches(batch_size=config.upsert_batch_size, batch_format="numpy")
    if progress is not None:
        batches = progress(batches, desc="rag.index: chunk, embed, upsert")
    for step, batch in enumerate(batches):
        wanted.update(str(i) for i in batch["id"])
        new = batch["is_new"]
        if not new.any():
            continue
        payloads = [{f: (v.item() if hasattr(v, "item") else v) for f, v in zip(PAYLOAD_FIELDS, vals)}
                    for vals in zip(*(batch[f][new] for f in PAYLOAD_FIELDS))]
        store.upsert([str(i) for i in batch["id"][new]], batch["dense"][new],
                     [(si.tolist(), sv.tolist()) for si, sv in zip(batch["sparse_indices"][new], batch["sparse_values"][new])],
                     payloads)
        num_upserted += len(payloads)
        if log is not None:
            log({"upserted_points": num_upserted}, step)
    if num_docs and not wanted:
        raise ValueError(f"{num_docs} documents produced no chunks (all texts empty?); check the docs input")
    t_embed = time.perf_counter()

    # Delete after upserting, so a re-index never leaves a document without chunks midway.
    stale = existing - wanted
    store.delete(sorted(stale))
    return {
        "num_docs": num_docs, "num_chunks": len(wanted), "num_points": store.count(),
        "num_upserted": num_upserted, "num_deleted": len(stale), "num_unchanged": len(wanted & existing),
        "collection_created": created, "fingerprint": fingerprint,
        "embed_upsert_s": t_embed - t0, "total_s": time.perf_counter() - t0,
    }
