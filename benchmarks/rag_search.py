"""Qdrant local-mode search vs exact numpy brute force: latency p50/p99 and recall@10.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rag_search.py --sizes 10000 100000 --queries 100 --repeats 3

About 5 minutes on 2 cores (most of it the 100k upsert); more queries only narrow the spread.

The stdlib corpus gives ~1.5k real chunks, too few for 10k/100k, so the points are synthetic:
random-but-clustered 384-d unit vectors (200 Gaussian clusters, like topic clusters of real
embeddings) with BM25-style sparse vectors drawn from per-cluster vocabularies. Everything goes
through ``components.rag.qdrant_store`` on an on-disk local-mode path (the default backend).
Baseline: exact top-10 by ``vectors @ query`` + ``argpartition`` in numpy on the same matrix
(it is also the ground truth for recall). Reports upsert throughput too, as measured.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from components.rag.config import SparseConfig
from components.rag.qdrant_store import QdrantStore
from components.rag.sparse import doc_vector, query_vector

DIMS, NUM_CLUSTERS, VOCAB_PER_CLUSTER = 384, 200, 50


def make_points(n: int, rng):
    centers = rng.normal(size=(NUM_CLUSTERS, DIMS)).astype(np.float32)
    labels = rng.integers(0, NUM_CLUSTERS, size=n)
    vecs = centers[labels] + rng.normal(scale=0.9, size=(n, DIMS)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    texts = [" ".join(f"c{lab}w{w}" for w in rng.integers(0, VOCAB_PER_CLUSTER, size=12)) for lab in labels]
    return centers, labels, vecs, texts


def make_queries(centers, num: int, rng):
    labels = rng.integers(0, NUM_CLUSTERS, size=num)
    q = centers[labels] + rng.normal(scale=0.9, size=(num, DIMS)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    texts = [" ".join(f"c{lab}w{w}" for w in rng.integers(0, VOCAB_PER_CLUSTER, size=3)) for lab in labels]
    return q, texts


def pct(xs, p):
    return float(np.percentile(np.asarray(xs), p))


def run_size(n: int, num_queries: int, repeats: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    centers, _, vecs, texts = make_points(n, rng)
    queries, qtexts = make_queries(centers, num_queries, rng)
    root = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    sparse_cfg = SparseConfig(avg_doc_tokens=12)
    ids = [str(uuid.UUID(int=i + 1)) for i in range(n)]
    t0 = time.perf_counter()
    with QdrantStore.open(root / "q", "bench") as store:
        store.ensure_collection(DIMS)
        for i in range(0, n, 1000):
            store.upsert(ids[i:i + 1000], vecs[i:i + 1000], [doc_vector(t, sparse_cfg) for t in texts[i:i + 1000]],
                         [{"i": j} for j in range(i, min(i + 1000, n))])
    upsert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    store = QdrantStore.open(root / "q", "bench")  # reload from disk, as a router replica would
    load_s = time.perf_counter() - t0
    truth = [set(np.argpartition(-(vecs @ q), 10)[:10].tolist()) for q in queries]
    res = {"n": n, "upsert_s": upsert_s, "load_s": load_s, "qdrant_ms": [], "numpy_ms": [], "hybrid_ms": [],
           "recall": None}
    recalls = []
    for _ in range(repeats):
        lat_q, lat_np, lat_h = [], [], []
        for qi, q in enumerate(queries):
            t = time.perf_counter()
            hits = store.search_dense(q, 10)
            lat_q.append((time.perf_counter() - t) * 1e3)
            recalls.append(len({int(h.payload["i"]) for h in hits} & truth[qi]) / 10)
            t = time.perf_counter()
            np.argpartition(-(vecs @ q), 10)[:10]
            lat_np.append((time.perf_counter() - t) * 1e3)
            if qi % 4 == 0:  # hybrid is slower; sample a quarter of the queries
                t = time.perf_counter()
                store.search_hybrid(q, query_vector(qtexts[qi]), 10, 50)
                lat_h.append((time.perf_counter() - t) * 1e3)
        res["qdrant_ms"].append((pct(lat_q, 50), pct(lat_q, 99)))
        res["numpy_ms"].append((pct(lat_np, 50), pct(lat_np, 99)))
        res["hybrid_ms"].append((pct(lat_h, 50), pct(lat_h, 99)))
    res["recall"] = float(np.mean(recalls))
    store.close()
    shutil.rmtree(root, ignore_errors=True)
    return res


def summary(pairs, idx):
    xs = [p[idx] for p in pairs]
    return statistics.median(xs), (max(xs) - min(xs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"| metric | ours (qdrant local) | baseline (numpy exact) | ratio | spread (ours, over {args.repeats} repeats) |")
    print("|---|---|---|---|---|")
    for n in args.sizes:
        r = run_size(n, args.queries, args.repeats, args.seed)
        for label, idx in (("p50", 0), ("p99", 1)):
            ours, spread = summary(r["qdrant_ms"], idx)
            base, _ = summary(r["numpy_ms"], idx)
            print(f"| dense top-10 latency {label} @ {n:,} | {ours:.2f} ms | {base:.2f} ms | {ours / base:.1f}x | ±{spread / 2:.2f} ms |")
        h50, hs = summary(r["hybrid_ms"], 0)
        h99, _ = summary(r["hybrid_ms"], 1)
        print(f"| hybrid (RRF) top-10 latency p50/p99 @ {n:,} | {h50:.2f} / {h99:.2f} ms | – | – | ±{hs / 2:.2f} ms |")
        print(f"| dense recall@10 @ {n:,} | {r['recall']:.4f} | 1.0 (exact) | {r['recall']:.4f} | – |")
        print(f"| upsert (on-disk local mode) @ {n:,} | {n / r['upsert_s']:.0f} points/s ({r['upsert_s']:.1f} s) | – | – | 1 run |")
        print(f"| reopen (load from disk) @ {n:,} | {r['load_s']:.1f} s | – | – | 1 run |", flush=True)


if __name__ == "__main__":
    main()
