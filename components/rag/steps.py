"""The RAG step functions: ``rag.index`` and ``rag.evaluate``."""
from __future__ import annotations

import json
import time

from components.artifacts import Docs
from components.rag.config import EvaluateConfig, IndexConfig, RetrievalConfig
from flows.engine.registry import PII_SCRUBBED, step_kind


@step_kind("rag.index", inputs=("docs",), requires_traits=(("docs", PII_SCRUBBED),),
           description="Chunk documents by tokens, embed (all-MiniLM-L6-v2, Ray Data) + BM25-style sparse "
                       "vectors, upsert into Qdrant (local mode in the artifact, or QDRANT_URL) idempotently.")
def run_index(ctx, config: IndexConfig) -> dict[str, float]:
    from components.rag.embed import DIMS, MODEL_NAME
    from components.rag.indexing import index_documents
    from components.rag.qdrant_store import QdrantStore, server_url

    docs = Docs.of(ctx)
    url = server_url()
    path = None if url else ctx.output / "qdrant"
    with QdrantStore.open(path, config.store.collection, url=url, timeout_s=config.store.timeout_s) as store:
        counts = index_documents(docs, store, config, log=ctx.log_metrics, progress=ctx.progress)
    meta = {
        "collection": config.store.collection, "model": MODEL_NAME, "dims": DIMS,
        "backend": "server" if url else "local", "location": url or "qdrant",
        "vectors": {"dense": "cosine", "sparse": "bm25-tf, idf modifier"},
        "chunking": config.chunking.model_dump(), "sparse": config.sparse.model_dump(),
        "counts": {k: counts[k] for k in ("num_docs", "num_chunks", "num_points", "num_upserted",
                                          "num_deleted", "num_unchanged")},
        "fingerprint": counts["fingerprint"],
    }
    (ctx.output / "index.json").write_text(json.dumps(meta, indent=2))
    metrics = {"num_points": counts["num_points"], "num_docs": counts["num_docs"],
               "num_upserted": counts["num_upserted"], "num_deleted": counts["num_deleted"],
               "index_s": counts["total_s"],
               "chunks_per_s": counts["num_upserted"] / max(counts["embed_upsert_s"], 1e-9)}
    ctx.log_metrics(metrics)
    ctx.set_tags({"rag.backend": meta["backend"], "rag.collection": meta["collection"], "rag.model": MODEL_NAME})
    return metrics


@step_kind("rag.evaluate", inputs=("index", "docs"), requires_traits=(("docs", PII_SCRUBBED),),
           description="Derive labelled queries from the corpus; recall@k, MRR, nDCG@10 for dense vs hybrid search.")
def run_evaluate(ctx, config: EvaluateConfig) -> dict[str, float]:
    from components.rag.embed import shared_embedder
    from components.rag.evaluation import derive_queries, doc_rank, score_ranks
    from components.rag.retriever import Retriever, open_index

    docs = Docs.of(ctx).rows(("id", "text"))
    queries = derive_queries(((d["id"], d["text"]) for d in docs), config.num_queries, config.query_words, config.seed)
    if not queries:
        raise ValueError("no query could be derived: no document has a sentence with "
                         f"{config.query_words} content words; lower query_words")
    embedder = shared_embedder()
    depth = max(max(config.ks), 10, config.prefetch_k)
    ranks: dict[str, list[int | None]] = {"dense": [], "hybrid": []}
    latency_ms: dict[str, list[float]] = {"dense": [], "hybrid": []}
    per_query = []
    with open_index(ctx.input("index")) as store:
        retriever = Retriever(store, embedder, RetrievalConfig(top_k=depth, prefetch_k=depth))
        vectors = embedder.embed([q.query for q in queries])
        for i, (q, vec) in enumerate(zip(ctx.progress(queries, total=len(queries), desc="rag.evaluate"), vectors)):
            row = {"query": q.query, "doc_id": q.doc_id}
            for mode in ("dense", "hybrid"):
                t0 = time.perf_counter()
                hits = retriever.search(q.query, vector=vec, mode=mode)
                latency_ms[mode].append((time.perf_counter() - t0) * 1e3)
                ranks[mode].append(doc_rank([h.doc_id for h in hits], q.doc_id))
                row[f"{mode}_rank"] = ranks[mode][-1]
            per_query.append(row)
    report: dict = {"num_queries": len(queries), "ks": config.ks}
    metrics: dict[str, float] = {}
    for mode in ("hybrid", "dense"):
        scores = score_ranks(ranks[mode], config.ks)
        scores["search_ms_p50"] = sorted(latency_ms[mode])[len(latency_ms[mode]) // 2]
        report[mode] = scores
        metrics.update({f"{mode}_{k}": v for k, v in scores.items()})
    report["hybrid_minus_dense_ndcg_at_10"] = report["hybrid"]["ndcg_at_10"] - report["dense"]["ndcg_at_10"]
    report["queries"] = per_query
    path = ctx.output / "report.json"
    path.write_text(json.dumps(report, indent=2))
    ctx.log_metrics(metrics)
    ctx.log_artifact(path)
    return metrics
