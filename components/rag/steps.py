"""The RAG step functions: ``rag.index`` and ``rag.evaluate``."""
from __future__ import annotations

import json

from components.artifacts import Docs
from components.rag.config import EvaluateConfig, IndexConfig, PushConfig
from flows.engine.registry import PII_SCRUBBED, step_kind


@step_kind("rag.index", inputs=("docs",), requires_traits=(("docs", PII_SCRUBBED),),
           description="Chunk documents by tokens, embed (all-MiniLM-L6-v2, Ray Data) + BM25 sparse vectors, "
                       "upsert into Qdrant idempotently: a Qdrant Edge shard + its snapshot in the artifact "
                       "(or local mode, or the server at QDRANT_URL).")
def run_index(ctx, config: IndexConfig) -> dict[str, float]:
    import time
    import uuid

    from components.rag.edge_store import write_snapshot
    from components.rag.embed import DIMS, MODEL_NAME
    from components.rag.indexing import index_documents
    from components.rag.qdrant_store import open_store, server_url

    docs = Docs.of(ctx)
    url = server_url()
    backend = "server" if url else config.store.embedded
    location = {"server": url, "edge": "shard", "local": "qdrant"}[backend]
    path = None if url else ctx.output / location
    with open_store(path, config.store.collection, embedded=config.store.embedded, url=url,
                    hnsw=config.store.hnsw, timeout_s=config.store.timeout_s) as store:
        counts = index_documents(docs, store, config, log=ctx.log_metrics, progress=ctx.progress)
        t0 = time.perf_counter()
        shard_info = store.finish()  # Edge: build the HNSW graph now, not on the first query
        optimize_s = time.perf_counter() - t0
    meta = {
        "collection": config.store.collection, "model": MODEL_NAME, "dims": DIMS,
        "backend": backend, "location": location,
        "vectors": {"dense": "cosine", "sparse": f"bm25 ({config.sparse.encoder}), idf modifier"},
        "chunking": config.chunking.model_dump(), "sparse": config.sparse.model_dump(),
        "hnsw": config.store.hnsw.model_dump(),
        "counts": {k: counts[k] for k in ("num_docs", "num_chunks", "num_points", "num_upserted",
                                          "num_deleted", "num_unchanged")},
        "fingerprint": counts["fingerprint"],
        # readers (router replicas) compare this to notice a rebuilt index and swap to it
        "build_id": uuid.uuid4().hex,
    }
    if backend == "edge":
        meta["snapshot"] = write_snapshot(path, ctx.output / "shard.snapshot").name
        meta["shard"] = shard_info
    (ctx.output / "index.json").write_text(json.dumps(meta, indent=2))
    metrics = {"num_points": counts["num_points"], "num_docs": counts["num_docs"],
               "num_upserted": counts["num_upserted"], "num_deleted": counts["num_deleted"],
               "index_s": counts["total_s"] + optimize_s, "optimize_s": optimize_s,
               "chunks_per_s": counts["num_upserted"] / max(counts["embed_upsert_s"], 1e-9)}
    ctx.log_metrics(metrics)
    ctx.set_tags({"rag.backend": meta["backend"], "rag.collection": meta["collection"], "rag.model": MODEL_NAME})
    return metrics


@step_kind("rag.push", inputs=("index",), cacheable=False,
           description="Load a rag.index artifact into a Qdrant server: create the collection with the index's "
                       "schema and recover its shard from the artifact's Edge snapshot; the output is a "
                       "server-backed index artifact the router serves with QDRANT_URL set.")
def run_push(ctx, config: PushConfig) -> dict[str, float]:
    from components.rag.config import HnswConfig
    from components.rag.qdrant_store import push_snapshot, server_url
    from components.rag.retriever import read_index_meta

    index_dir = ctx.input("index")
    meta = read_index_meta(index_dir)
    if meta["backend"] != "edge" or not meta.get("snapshot"):
        raise ValueError(f"rag.push needs an index built with store.embedded: edge (it ships the shard's snapshot); "
                         f"{index_dir} is a {meta['backend']!r} index")
    url = config.url or server_url()
    if not url:
        raise ValueError("rag.push needs a Qdrant server: set the step's url, or QDRANT_URL in the environment")
    collection = config.collection or meta["collection"]
    out = push_snapshot(index_dir / meta["snapshot"], url, collection, meta["dims"], hnsw=HnswConfig(**meta["hnsw"]),
                        timeout_s=config.timeout_s)
    pushed = {**meta, "backend": "server", "location": url, "collection": collection, "pushed_from": str(index_dir)}
    for key in ("snapshot", "shard"):
        pushed.pop(key, None)
    (ctx.output / "index.json").write_text(json.dumps(pushed, indent=2))
    metrics = {"snapshot_bytes": float(out["snapshot_bytes"]), "collection_created": float(out["collection_created"])}
    ctx.log_metrics(metrics)
    return metrics


@step_kind("rag.evaluate", inputs=("index", "docs"), requires_traits=(("docs", PII_SCRUBBED),),
           effects=("hybrid_recall_at_1",),
           description="Recall@k, MRR, nDCG@10 of dense, sparse and hybrid search on queries derived from the "
                       "indexed documents and on hand-written labelled questions, each against a random pick.")
def run_evaluate(ctx, config: EvaluateConfig) -> dict[str, float]:
    from components.rag.embed import shared_embedder
    from components.rag.evaluation import evaluate_index, headline_metrics
    from components.rag.labelled_questions import (
        labelled_questions_path,
        load_labelled_questions,
    )
    from components.rag.retriever import open_index

    docs = list(Docs.of(ctx).rows())
    questions, source = None, None
    if config.labelled_questions is not None:
        path = labelled_questions_path(config.labelled_questions)
        questions, source = load_labelled_questions(path), str(path)
    with open_index(ctx.input("index")) as store:
        report = evaluate_index(store, shared_embedder(), docs, num_queries=config.num_queries,
                                query_words=config.query_words, seed=config.seed, ks=config.ks,
                                depth=max(max(config.ks), 10, config.prefetch_k), questions=questions,
                                questions_source=source or "", progress=ctx.progress, fusion=config.fusion)
    if questions is not None:
        report["labelled"]["sha256"] = config.labelled_questions_sha256
    path = ctx.output / "report.json"
    path.write_text(json.dumps(report, indent=2))
    metrics = headline_metrics(report)
    ctx.log_metrics(metrics)
    ctx.log_artifact(path)
    # Against a random pick, not BM25: on derived queries (words copied from the doc) BM25 alone
    # beats hybrid, by design of those queries; sparse_recall_at_1 sits beside the headline instead.
    random_pick = f"random pick of {report['num_indexed_docs']} indexed docs"
    ctx.report_effect("hybrid_recall_at_1", metrics["hybrid_recall_at_1"], metrics["random_recall_at_1"],
                      higher_is_better=True, min_margin=config.min_gain_vs_random, baseline_name=random_pick)
    if questions is not None:
        ctx.report_effect("labelled_hybrid_recall_at_1", metrics["labelled_hybrid_recall_at_1"],
                          metrics["labelled_random_recall_at_1"], higher_is_better=True,
                          min_margin=config.min_gain_vs_random, baseline_name=random_pick)
    return metrics
