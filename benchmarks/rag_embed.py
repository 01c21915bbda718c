"""rag.index with the embedder in bf16 (where the CPU multiplies bf16 natively) vs fp32, same run.

    .venv/bin/python benchmarks/rag_embed.py --repeats 2

Corpus: the 79 pydoc topics (the e2e recipe's index), as a docs artifact. Each side runs
``rag.index`` then ``rag.evaluate`` (derived queries + the hand-written labelled questions) in a
fresh process with its own local Ray (``LLMFLOW_EMBED_DTYPE`` is read when the embedding actor
starts), interleaved. Reports chunks/s of the index step's embed + upsert pass, the step's wall,
and the labelled/derived recall of each side: the speed-up must not cost retrieval quality.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's code
QUALITY = ("labelled_hybrid_recall_at_5", "labelled_dense_recall_at_5", "hybrid_recall_at_1", "dense_recall_at_1")


def one(dtype: str, docs: Path, out: Path) -> None:
    """Child process: index + evaluate with ``dtype``; prints one JSON line."""
    import ray

    from components.rag.config import EvaluateConfig, IndexConfig
    from components.rag.steps import run_evaluate, run_index
    from flows.engine.context import StepContext

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    t0 = time.perf_counter()
    m = run_index(StepContext.for_test(out / "index", {"docs": docs}), IndexConfig())
    wall = time.perf_counter() - t0
    q = run_evaluate(StepContext.for_test(out / "eval", {"index": out / "index", "docs": docs}),
                     EvaluateConfig(num_queries=79, labelled_questions="builtin"))
    ray.shutdown()
    print(json.dumps({"dtype": dtype, "chunks_per_s": m["chunks_per_s"], "index_s": wall,
                      "num_points": m["num_points"], **{k: q[k] for k in QUALITY}}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    args, rest = ap.parse_known_args()
    if rest[:1] == ["_one"]:
        one(rest[1], Path(rest[2]), Path(rest[3]))
        return

    from components.artifacts import Docs
    from components.data.stdlib_corpus import stdlib_documents

    root = Path(tempfile.mkdtemp(prefix="bench_rag_embed_"))
    Docs.write(list(stdlib_documents(include_modules=False)), root / "docs")
    runs: dict[str, list[dict]] = {"bf16": [], "fp32": []}
    load0 = os.getloadavg()
    for r in range(args.repeats):
        for dtype in ("bf16", "fp32") if r % 2 == 0 else ("fp32", "bf16"):
            env = {**os.environ, "LLMFLOW_EMBED_DTYPE": dtype, "PYTHONPATH": str(REPO)}
            res = subprocess.run([sys.executable, __file__, "_one", dtype, str(root / "docs"), str(root / f"{dtype}{r}")],
                                 env=env, capture_output=True, text=True, check=True)
            runs[dtype].append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(f"{dtype} repeat {r + 1}: {runs[dtype][-1]}", flush=True)
    print(f"load average start {load0} end {os.getloadavg()}; cores {os.cpu_count()}")
    print("| metric | bf16 | fp32 | ratio | spread (bf16 / fp32) |")
    print("|---|---|---|---|---|")
    for key in ("chunks_per_s", "index_s", *QUALITY):
        b, f = ([r[key] for r in runs[d]] for d in ("bf16", "fp32"))
        mb, mf = statistics.median(b), statistics.median(f)
        spread = " / ".join(f"{(max(v) - min(v)) / m * 100:.0f}%" if m else "0%" for v, m in ((b, mb), (f, mf)))
        print(f"| {key} | {mb:.4g} | {mf:.4g} | {mb / mf if mf else float('nan'):.3f} | {spread} |")


if __name__ == "__main__":
    main()
