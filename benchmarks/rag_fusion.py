"""Hybrid fusion sweep on the labelled questions: which RRF k / weights / prefetch / BM25 settings rank best.

    .venv/bin/python benchmarks/rag_fusion.py [--cache /work/cache-edge/fusion]

One process, no Ray: the 79 pydoc topics (``components.data.stdlib_corpus``, unscrubbed) are cut by
rag.index's own chunker (``components.rag.indexing.chunk_batch``) and embedded once with
all-MiniLM-L6-v2 (cached in ``--cache``); for each BM25 setting an Edge shard is built from those
vectors (exact search: 1.4k points are below the HNSW threshold, as in rag.index's index). Every
fusion setting then ranks the 50 labelled questions of ``components/rag/labelled_questions.jsonl``
and is scored as rag.evaluate scores them (recall@k over distinct documents of the first ``--depth``
chunks, MRR). Baselines in the same run: dense only, sparse only and the current default.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.rag.config import ChunkingConfig, HnswConfig, SparseConfig
from components.rag.evaluation import doc_rank, score_ranks
from components.rag.labelled_questions import (
    BUILTIN,
    labelled_questions_path,
    load_labelled_questions,
)
from components.rag.qdrant_store import open_store
from components.rag.sparse import doc_vector, query_vector


def chunks_and_vectors(cache: Path):
    """rag.index's chunks of the 79 topics and their embeddings (cached: embedding is the slow part)."""
    from components.data.stdlib_corpus import pydoc_topics
    from components.rag.embed import Embedder, model_dir
    from components.rag.indexing import chunk_batch

    if (cache / "chunks.json").exists():
        return json.loads((cache / "chunks.json").read_text()), np.load(cache / "dense.npy")
    docs = list(pydoc_topics())
    batch = {k: np.array([d[k] for d in docs], dtype=object) for k in ("id", "title", "source", "text")}
    out = chunk_batch(batch, ChunkingConfig().model_dump(), SparseConfig().model_dump(), model_dir(), "bench")
    chunks = [{"doc_id": d, "text": t} for d, t in zip(out["doc_id"], out["text"])]
    dense = Embedder(batch_size=64).embed([c["text"] for c in chunks]).astype(np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "chunks.json").write_text(json.dumps(chunks))
    np.save(cache / "dense.npy", dense)
    return chunks, dense


def build(path: Path, chunks, dense, sparse: SparseConfig):
    store = open_store(path, "bench", embedded="edge", hnsw=HnswConfig())
    store.ensure_collection(dense.shape[1])
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(len(chunks))]
    store.upsert(ids, dense, [doc_vector(c["text"], sparse) for c in chunks], chunks)
    store.finish()
    store.sparse_config = sparse
    return store


def hybrid(store, vec, sv, depth: int, dense_k: int, sparse_k: int, fusion) -> list[str]:
    from qdrant_edge import Prefetch, Query, QueryRequest, SparseVector

    pre = [Prefetch(limit=dense_k, query=Query.Nearest([float(x) for x in vec], using="dense"))]
    if sv[0]:
        pre.append(Prefetch(limit=sparse_k, query=Query.Nearest(SparseVector(list(sv[0]), list(sv[1])), using="sparse")))
    elif getattr(fusion, "weights", None):
        fusion = type(fusion)(k=fusion.k, weights=fusion.weights[:1])
    points = store.shard.query(QueryRequest(limit=depth, with_payload=["doc_id"], prefetches=pre, query=fusion))
    return [p.payload["doc_id"] for p in points]


def main() -> None:
    from qdrant_edge import Fusion

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path("/work/cache-edge/fusion"))
    ap.add_argument("--depth", type=int, default=50, help="chunks ranked per question (rag.evaluate: 50)")
    ap.add_argument("--builds", type=int, default=5, help="fresh shards per default for the spread over builds")
    args = ap.parse_args()
    chunks, dense = chunks_and_vectors(args.cache)
    from components.rag.embed import Embedder

    questions = load_labelled_questions(labelled_questions_path(BUILTIN))
    qvecs = Embedder().embed([q.question for q in questions])
    print(f"{len(chunks)} chunks of {len({c['doc_id'] for c in chunks})} docs, {len(questions)} questions, "
          f"depth {args.depth}")
    print("| bm25 (k1, b, avg_len) | ranking | recall@1 | recall@5 | recall@10 | MRR |")
    print("|---|---|---|---|---|---|")

    def report(label: str, ranked: list[list[str]], relevant: list[set[str]] | None = None):
        relevant = relevant or [set(q.doc_ids) for q in questions]
        ranks = [doc_rank(r, rel) for r, rel in zip(ranked, relevant)]
        s = score_ranks(ranks, [1, 5, 10])
        print(f"| {label} | {s['recall_at_1']:.2f} | {s['recall_at_5']:.2f} | {s['recall_at_10']:.2f} | "
              f"{s['mrr']:.3f} |", flush=True)
        return s

    root = Path(tempfile.mkdtemp(prefix="rag-fusion-"))
    bm25s = [(1.2, 0.75, 100.0), (1.2, 0.75, 256.0), (1.2, 0.3, 100.0), (0.9, 0.4, 100.0), (1.5, 0.75, 100.0),
             (2.0, 0.75, 100.0)]
    for n, (k1, b, avg) in enumerate(bm25s):
        sparse = SparseConfig(k1=k1, b=b, avg_doc_tokens=avg)
        store = build(root / f"s{n}", chunks, dense, sparse)
        tag = f"{k1}, {b}, {avg:.0f}"
        qsv = [query_vector(q.question, sparse) for q in questions]
        if n == 0:
            report(f"{tag} | dense only", [[h.payload["doc_id"] for h in store.search_dense(v, args.depth)]
                                           for v in qvecs])
        report(f"{tag} | sparse only", [[h.payload["doc_id"] for h in store.search_sparse(s, args.depth)] if s[0]
                                        else [] for s in qsv])
        grid = [(Fusion.Rrf(k=2), args.depth, args.depth)] if n else list(itertools.chain(
            [(Fusion.Rrf(k=k), p, p) for k in (2, 10, 60) for p in (10, 20, 50)],
            [(Fusion.Rrf(k=k, weights=[w, 1.0]), p, p) for k in (2, 10, 60) for w in (1.5, 2.0, 3.0) for p in (20, 50)],
            [(Fusion.Rrf(k=k, weights=[2.0, 1.0]), 50, sp) for k in (10, 60) for sp in (5, 10)],
            [(Fusion.Dbsf(), p, p) for p in (20, 50)]))
        if n:
            grid += [(Fusion.Rrf(k=k, weights=[w, 1.0]), 50, 50) for k in (10, 60) for w in (2.0, 3.0)]
        for fusion, dk, sk in grid:
            name = (f"RRF k={fusion.k} w={fusion.weights or [1, 1]}" if isinstance(fusion, Fusion.Rrf) else "DBSF")
            report(f"{tag} | hybrid {name}, prefetch dense {dk} / sparse {sk}",
                   [hybrid(store, v, s, args.depth, dk, sk, fusion) for v, s in zip(qvecs, qsv)])
        store.close()
    derived(chunks, dense, root / "derived", args.depth, report)
    spread(chunks, dense, root / "spread", args.depth, args.builds, questions, qvecs)


def spread(chunks, dense, root: Path, depth: int, builds: int, questions, qvecs) -> None:
    """Edge builds its HNSW graph with threads, so two builds of the same points rank a few chunks
    differently: the labelled recall@5 of the old and the new default over ``builds`` fresh shards."""
    from qdrant_edge import Fusion

    from components.rag.config import FusionConfig

    new = FusionConfig()
    for label, sparse, fusion in (("old default (RRF k=2, 1:1)", SparseConfig(avg_doc_tokens=100.0), Fusion.Rrf(k=2)),
                                  ("new default", SparseConfig(), Fusion.Rrf(k=new.rrf_k,
                                                                            weights=[new.dense_weight, new.sparse_weight]))):
        qsv = [query_vector(q.question, sparse) for q in questions]
        r5 = []
        for b in range(builds):
            store = build(root / f"{label[:3]}{b}", chunks, dense, sparse)
            ranked = [hybrid(store, v, s, depth, depth, depth, fusion) for v, s in zip(qvecs, qsv)]
            r5.append(score_ranks([doc_rank(r, set(q.doc_ids)) for r, q in zip(ranked, questions)], [5])["recall_at_5"])
            store.close()
        print(f"labelled recall@5, {label}, over {builds} builds: {sorted(r5)} (median {float(np.median(r5)):.2f})",
              flush=True)


def derived(chunks, dense, root: Path, depth: int, report) -> None:
    """The old and the new default on rag.evaluate's derived keyword queries (one per topic, seed 0)."""
    from pydoc_data.topics import topics

    from qdrant_edge import Fusion

    from components.rag.config import FusionConfig
    from components.rag.embed import Embedder
    from components.rag.evaluation import derive_queries

    docs = {f"topics/{k}": topics[k] for k in sorted(topics)}
    queries = derive_queries(sorted(docs.items()), len(docs), 8, 0, indexed_doc_ids=docs)
    vecs = Embedder().embed([q.query for q in queries])
    new, old = FusionConfig(), SparseConfig(avg_doc_tokens=100.0)
    for label, sparse, fusion in (("old default (RRF k=2, 1:1)", old, Fusion.Rrf(k=2)),
                                  ("new default", SparseConfig(), Fusion.Rrf(k=new.rrf_k,
                                                                            weights=[new.dense_weight, new.sparse_weight]))):
        store = build(root / label[:3], chunks, dense, sparse)
        qsv = [query_vector(q.query, sparse) for q in queries]
        ranked = [hybrid(store, v, s, depth, depth, depth, fusion) for v, s in zip(vecs, qsv)]
        report(f"{sparse.k1}, {sparse.b}, {sparse.avg_doc_tokens:.0f} | {label}, {len(queries)} DERIVED queries",
               ranked, [{q.doc_id} for q in queries])
        store.close()


if __name__ == "__main__":
    main()
