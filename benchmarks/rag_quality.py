"""Retrieval quality on the stdlib docs: hybrid (dense + BM25-style sparse, RRF) vs dense only.

    .venv/bin/python benchmarks/rag_quality.py --query-words 8 4

Indexes all 79 pydoc topics with ``rag.index`` (default config: 128-token chunks, 24 overlap)
and runs ``rag.evaluate`` (one derived keyword query per document, labelled with its source
document) at each query length. Baseline: dense-only search on the same index and queries.
Deterministic (seed 0), so one run per setting; the spread column is not applicable.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--query-words", type=int, nargs="+", default=[8, 4])
    args = ap.parse_args()

    from pydoc_data.topics import topics

    import ray

    from components.artifacts import Docs
    from components.rag.config import EvaluateConfig, IndexConfig
    from components.rag.steps import run_evaluate, run_index
    from flows.engine.context import StepContext

    root = Path(tempfile.mkdtemp(prefix="rag-quality-"))
    keys = sorted(topics)
    Docs.write(({"id": k, "text": topics[k], "source": "pydoc_data.topics", "title": k} for k in keys),
               root / "docs")
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        index = run_index(StepContext.for_test(root / "index", {"docs": root / "docs"}), IndexConfig())
        print(f"indexed {index['num_docs']:.0f} docs into {index['num_points']:.0f} chunks in {index['index_s']:.0f} s")
        print("| metric | ours (hybrid) | baseline (dense) | ratio |")
        print("|---|---|---|---|")
        for qw in args.query_words:
            out = root / f"eval{qw}"
            run_evaluate(StepContext.for_test(out, {"index": root / "index", "docs": root / "docs"}),
                         EvaluateConfig(num_queries=len(keys), query_words=qw,
                                        labelled_questions=None))  # bare topic ids: rag_eval.py scores those
            r = json.loads((out / "report.json").read_text())
            for m in ("recall_at_1", "recall_at_10", "mrr", "ndcg_at_10"):
                h, d = r["hybrid"][m], r["dense"][m]
                print(f"| {m} ({r['num_queries']} queries of {qw} words) | {h:.3f} | {d:.3f} | {h / d:.2f}x |")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
