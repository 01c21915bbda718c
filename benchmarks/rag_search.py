"""Dense/hybrid search at 10k-1M chunks: Qdrant Edge (HNSW) vs qdrant-client local mode vs exact numpy.

    flock /tmp/llmflow-heavy.lock .venv/bin/python benchmarks/rag_search.py --real 10000 --synthetic 100000

``--real N``: real all-MiniLM-L6-v2 embeddings of this machine's documentation, cached by
benchmarks/rag_corpus.py (run that first; the last ``--queries`` cached chunks are the queries and
are not indexed). ``--synthetic N``: clustered 384-d unit vectors (200 Gaussian clusters) with
per-cluster vocabularies for the sparse side. For each size, in one process and on the same
points: Edge (``components.rag.edge_store``: upsert, HNSW build, reload from disk as a reader
does, then search with each ``--ef``), local mode (only up to ``--local-max`` points: it is
brute force in Python) and the baseline, exact top-10 by ``vectors @ query`` in numpy, which is
also the ground truth of recall@10. Reports build time, p50/p99 latency (dense; hybrid RRF with
Qdrant BM25), recall@10 and the resident memory the loaded index added (VmRSS delta).
"""
from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

# This tree's code, whichever checkout the venv was installed from.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.rag.config import HnswConfig, SparseConfig
from components.rag.qdrant_store import open_store
from components.rag.sparse import doc_vector, query_vector

DIMS, NUM_CLUSTERS, VOCAB_PER_CLUSTER, BATCH = 384, 200, 50, 1000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def synthetic(n: int, num_queries: int, seed: int):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(NUM_CLUSTERS, DIMS)).astype(np.float32)

    def draw(m, words):
        labels = rng.integers(0, NUM_CLUSTERS, size=m)
        v = centers[labels] + rng.normal(scale=0.9, size=(m, DIMS)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return v, [" ".join(f"c{lab}w{w}" for w in rng.integers(0, VOCAB_PER_CLUSTER, size=words)) for lab in labels]

    vecs, texts = draw(n, 12)
    queries, qtexts = draw(num_queries, 3)
    return vecs, texts, queries, qtexts


def real(n: int, num_queries: int, cache: Path):
    from rag_corpus import load  # beside this script

    texts, vecs = load(cache, n)
    # Qdrant's cosine normalizes what it stores; the numpy truth must rank the same unit vectors
    # (bf16-embedded chunks come out of sentence-transformers with norms up to ~1.007).
    vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    if n <= num_queries:
        raise SystemExit(f"--real {n} must exceed --queries {num_queries}")
    # held-out chunks are the queries: near, never equal, to indexed ones
    return vecs[:-num_queries], texts[:-num_queries], vecs[-num_queries:], texts[-num_queries:]


def build(kind: str, path: Path, vecs, texts, hnsw: HnswConfig, sparse: SparseConfig) -> float:
    t0 = time.perf_counter()
    with open_store(path, "bench", embedded=kind, hnsw=hnsw) as store:
        store.ensure_collection(DIMS)
        for i in range(0, len(vecs), BATCH):
            j = min(i + BATCH, len(vecs))
            store.upsert([str(uuid.UUID(int=k + 1)) for k in range(i, j)], vecs[i:j],
                         [doc_vector(t, sparse) for t in texts[i:j]], [{"i": k} for k in range(i, j)])
        upsert_s = time.perf_counter() - t0
        print(f"  {kind} {len(vecs):,}: upsert {upsert_s:.1f} s, finishing (Edge: optimize = HNSW build) ...", flush=True)
        info = store.finish() or {}
    # so that a run cut by its timeout still says which phase it was in, and how the build splits
    build_s = time.perf_counter() - t0
    print(f"  {kind} {len(vecs):,}: finish {build_s - upsert_s:.1f} s {info}", flush=True)
    return build_s


def timed(fn, queries) -> tuple[list[float], list]:
    lat, out = [], []
    for q in queries:
        t = time.perf_counter()
        out.append(fn(q))
        lat.append((time.perf_counter() - t) * 1e3)
    return lat, out


def pcts(lat) -> tuple[float, float]:
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 99))


def recall_with_ties(hits, queries, matrix, eps: float = 1e-5) -> float:
    """recall@10 where a hit counts if its exact score is within ``eps`` of the 10th best exact score
    (ann-benchmarks' threshold rule): near-identical chunks tie, and which of them argpartition keeps
    is arbitrary, so plain id overlap under-counts even an exact engine (local mode scores < 1.0)."""
    out = []
    for hs, q in zip(hits, queries):
        scores = matrix @ q
        kth = np.partition(scores, -10)[-10]
        out.append(sum(scores[h.payload["i"]] >= kth - eps for h in hs) / 10)
    return float(np.mean(out))


def measure(kind: str, root: Path, vecs, texts, queries, qtexts, truth, hnsw: HnswConfig, efs: list[int],
            sparse: SparseConfig) -> list[dict]:
    path = root / kind
    build_s = build(kind, path, vecs, texts, hnsw, sparse)
    gc.collect()
    rss0 = rss_mb()
    t0 = time.perf_counter()
    store = open_store(path, "bench", embedded=kind, hnsw=hnsw)  # reload from disk, as a reader does
    load_s = time.perf_counter() - t0
    rows = []
    for ef in efs if kind == "edge" else [None]:
        if ef is not None:
            store.hnsw = hnsw.model_copy(update={"ef": ef})
        store.search_dense(queries[0], 10)  # warm-up
        lat, hits = timed(lambda q: store.search_dense(q, 10), queries)
        recall = np.mean([len({h.payload["i"] for h in hs} & t) / 10 for hs, t in zip(hits, truth)])
        tie_recall = recall_with_ties(hits, queries, np.ascontiguousarray(vecs, dtype=np.float32))
        pairs = list(zip(queries, (query_vector(t, sparse) for t in qtexts)))
        hlat, _ = timed(lambda p: store.search_hybrid(p[0], p[1], 10, 50), pairs)
        rows.append({"backend": kind, "ef": ef, "build_s": build_s, "load_s": load_s, "dense_ms": pcts(lat),
                     "hybrid_ms": pcts(hlat), "recall": float(recall), "tie_recall": tie_recall, "rss_mb": rss_mb() - rss0})
    store.close()
    shutil.rmtree(path, ignore_errors=True)
    return rows


def run(label: str, vecs, texts, queries, qtexts, args) -> None:
    n = len(vecs)
    hnsw = HnswConfig(m=args.m, ef_construct=args.ef_construct, full_scan_threshold_kb=args.full_scan_kb,
                      indexing_threshold_kb=args.indexing_kb)
    sparse = SparseConfig(avg_doc_tokens=float(np.mean([len(t.split()) for t in texts[:2000]])))
    t0 = time.perf_counter()
    matrix = np.ascontiguousarray(vecs, dtype=np.float32)
    np_lat, truth = timed(lambda q: set(np.argpartition(-(matrix @ q), 10)[:10].tolist()), queries)
    np50, np99 = pcts(np_lat)
    print(f"| {label} {n:,}: exact numpy top-10 | p50 {np50:.2f} ms / p99 {np99:.2f} ms | recall 1.0 | "
          f"matrix {matrix.nbytes / 2**20:.0f} MB | {time.perf_counter() - t0:.1f} s for {len(queries)} queries |",
          flush=True)
    root = Path(tempfile.mkdtemp(prefix="rag-search-", dir=args.workdir))
    kinds = ["edge"] + (["local"] if n <= args.local_max else [])
    for kind in kinds:
        for r in measure(kind, root, vecs, texts, queries, qtexts, truth, hnsw, args.ef, sparse):
            d50, d99 = r["dense_ms"]
            h50, h99 = r["hybrid_ms"]
            name = f"Edge m={args.m} ef_construct={args.ef_construct} ef={r['ef']}" if kind == "edge" else "local mode"
            print(f"| {label} {n:,}: {name} | dense p50 {d50:.2f} ms ({d50 / np50:.2f}x numpy) / p99 {d99:.2f} ms | "
                  f"recall@10 {r['recall']:.4f} (ties counted {r['tie_recall']:.4f}) | hybrid p50 {h50:.2f} / p99 {h99:.2f} ms | build {r['build_s']:.1f} s, "
                  f"load {r['load_s']:.2f} s, RSS +{r['rss_mb']:.0f} MB |", flush=True)
    shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=int, nargs="*", default=[], help="sizes on cached real MiniLM chunks")
    ap.add_argument("--synthetic", type=int, nargs="*", default=[], help="sizes on clustered synthetic vectors")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--m", type=int, default=HnswConfig().m)
    ap.add_argument("--ef-construct", type=int, default=HnswConfig().ef_construct)
    ap.add_argument("--ef", type=int, nargs="+", default=[HnswConfig().ef])
    ap.add_argument("--full-scan-kb", type=int, default=HnswConfig().full_scan_threshold_kb)
    ap.add_argument("--indexing-kb", type=int, default=HnswConfig().indexing_threshold_kb)
    ap.add_argument("--local-max", type=int, default=10_000, help="largest size local mode runs at")
    ap.add_argument("--cache", type=Path, default=Path("/work/cache-edge/corpus"))
    ap.add_argument("--workdir", type=Path, default=None, help="where the indexes are written (default: /tmp)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print("| size: backend | dense top-10 latency | recall@10 vs exact | hybrid latency / memory | build, load, RSS |")
    print("|---|---|---|---|---|")
    for n in args.real:
        run("real MiniLM", *real(n, args.queries, args.cache), args)
    for n in args.synthetic:
        run("synthetic", *synthetic(n, args.queries, args.seed), args)


if __name__ == "__main__":
    main()
