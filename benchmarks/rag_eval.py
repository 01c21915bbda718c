"""rag.evaluate on the main job's index: derived queries and hand-written labelled questions,
dense / sparse (BM25) / hybrid, against a random pick among the indexed documents.

    flock /tmp/llmflow-heavy.lock .venv/bin/python benchmarks/rag_eval.py

Runs the e2e recipe's ``corpus`` → ``index`` → ``rag_eval`` steps with the recipe's own settings
(``flows/recipes/e2e.yaml``; ``--set`` overrides as for ``llmflow run``) through the step
functions (``StepContext.for_test``, no MLflow), on a local Ray with the recipe's CPU count,
and prints the table for benchmarks/RESULTS.md. Ours = hybrid retrieval (what the router
serves); the baselines, measured in the same run on the same index and queries: a random pick
among the indexed documents (exact expectation) and sparse-only (BM25) search. Retrieval is
deterministic (seed 0, exact local-mode search), so ``--repeats`` only spreads the wall times
(the index is rebuilt from scratch each repeat).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

# This tree's code, in the driver and in Ray's workers, whichever checkout the venv was installed from.
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_once(root: Path, configs, num_cpus: int) -> dict:
    import ray

    from components.data.steps import run_corpus
    from components.rag.retriever import open_index
    from components.rag.steps import run_evaluate, run_index
    from flows.engine.context import StepContext

    t0 = time.perf_counter()
    run_corpus(StepContext.for_test(root / "corpus"), configs["corpus"])
    corpus_s = time.perf_counter() - t0
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                                      "PYTHONPATH": str(REPO)}})
    try:
        t0 = time.perf_counter()
        run_index(StepContext.for_test(root / "index", {"docs": root / "corpus"}), configs["index"])
        index_s = time.perf_counter() - t0
    finally:
        ray.shutdown()
    t0 = time.perf_counter()
    run_evaluate(StepContext.for_test(root / "eval", {"index": root / "index", "docs": root / "corpus"}),
                 configs["rag_eval"])
    eval_s = time.perf_counter() - t0
    report = json.loads((root / "eval" / "report.json").read_text())
    with open_index(root / "index") as store:
        indexed = sorted(store.doc_hashes())
    return {"report": report, "indexed": indexed, "corpus_s": corpus_s, "index_s": index_s,
            "eval_s": eval_s}


def spread(values: list[float], unit: str = " s") -> str:
    if len(values) < 2:
        return "1 run"
    return f"±{(max(values) - min(values)) / 2:.1f}{unit} over {len(values)}"


def ratio(ours: float, base: float) -> str:
    return f"{ours / base:.2f}×" if base else "—"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override, as for llmflow run")
    ap.add_argument("--repeats", type=int, default=1, help="fresh corpus + index + evaluate runs (wall-time spread)")
    ap.add_argument("--machine", default="cpu2 (2-core CPU, shared)")
    ap.add_argument("--date", default=time.strftime("%Y-%m-%d"))
    args = ap.parse_args()

    from flows.recipe import load_recipe

    recipe = load_recipe("e2e", args.overrides)
    runs = [run_once(Path(tempfile.mkdtemp(prefix="rag-eval-bench-")), recipe.configs, recipe.model.ray.num_cpus)
            for _ in range(args.repeats)]
    r = runs[0]["report"]
    for other in runs[1:]:  # retrieval is deterministic: every repeat must score the same
        for m in ("dense", "sparse", "hybrid"):
            assert {k: v for k, v in other["report"][m].items() if k != "search_ms_p50"} == \
                {k: v for k, v in r[m].items() if k != "search_ms_p50"}, f"{m} scores differ between repeats"
    kinds = Counter(d.split("/")[0] for d in runs[0]["indexed"])
    lab = r.get("labelled")
    n_docs, n_chunks = r["num_indexed_docs"], r["num_indexed_chunks"]
    cmd = "`flock /tmp/llmflow-heavy.lock .venv/bin/python benchmarks/rag_eval.py" + \
          "".join(f" --set {o}" for o in args.overrides) + (f" --repeats {args.repeats}" if args.repeats > 1 else "") + "`"
    det = "deterministic (seed 0)" + (f", identical over {len(runs)} runs" if len(runs) > 1 else ", 1 run")
    where = f"{n_docs} indexed docs ({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))}; {n_chunks:,} chunks)"
    print(f"rag.index max_docs {recipe.configs['index'].max_docs}: the index holds {where}, "
          f"from {runs[0]['indexed'][0]} to {runs[0]['indexed'][-1]}")
    if lab is not None and lab["skipped"]:
        print(f"labelled questions without an indexed document: {[q['doc_ids'] for q in lab['skipped']]}")
    print("| metric | ours | baseline | ratio | spread | command | machine | date |")
    print("|---|---|---|---|---|---|---|---|")

    def row(metric, ours, base, rat, spr=det):
        print(f"| {metric} | {ours} | {base} | {rat} | {spr} | {cmd} | {args.machine} | {args.date} |")

    sets = [("derived", r, (f"{r['num_queries']} derived {recipe.configs['rag_eval'].query_words}-word queries "
                           f"over the {where}"))]
    if lab is not None:
        sets.append(("labelled", lab, (f"{lab['num_questions']} of {lab['num_questions_total']} hand-written "
                                      "labelled questions answerable from the index")))
    for name, part, n in sets:
        h, s, d, rnd = part["hybrid"], part["sparse"], part["dense"], part["random"]
        row(f"{name} recall@1, hybrid, {n}", f"{h['recall_at_1']:.3f}",
            f"{rnd['recall_at_1']:.3f} (random pick) / {s['recall_at_1']:.3f} (sparse BM25 only)",
            f"{ratio(h['recall_at_1'], rnd['recall_at_1'])} / {ratio(h['recall_at_1'], s['recall_at_1'])}")
        row(f"{name} recall@5, hybrid, same queries", f"{h['recall_at_5']:.3f}",
            f"{rnd['recall_at_5']:.3f} (random) / {s['recall_at_5']:.3f} (sparse)",
            f"{ratio(h['recall_at_5'], rnd['recall_at_5'])} / {ratio(h['recall_at_5'], s['recall_at_5'])}")
        row(f"{name} MRR, hybrid, same queries", f"{h['mrr']:.3f}",
            f"{rnd['mrr']:.3f} (random) / {s['mrr']:.3f} (sparse)",
            f"{ratio(h['mrr'], rnd['mrr'])} / {ratio(h['mrr'], s['mrr'])}")
        row(f"{name} recall@1 / recall@5 / MRR, hybrid vs dense only, same queries",
            f"{h['recall_at_1']:.3f} / {h['recall_at_5']:.3f} / {h['mrr']:.3f}",
            f"{d['recall_at_1']:.3f} / {d['recall_at_5']:.3f} / {d['mrr']:.3f} (dense only)",
            " / ".join(ratio(h[k], d[k]) for k in ("recall_at_1", "recall_at_5", "mrr")))
    walls = {k: [run[k] for run in runs] for k in ("corpus_s", "index_s", "eval_s")}
    row(f"rag.index wall, {n_docs} docs → {n_chunks:,} chunks (Ray Data, 1 embedding actor, local Qdrant)",
        f"{statistics.mean(walls['index_s']):.1f} s", "—", "—", spread(walls["index_s"]))
    row(f"rag.evaluate wall ({r['num_queries']} derived + {lab['num_questions'] if lab else 0} labelled queries × "
        "3 modes, model load included)", f"{statistics.mean(walls['eval_s']):.1f} s", "—", "—", spread(walls["eval_s"]))
    row("data.corpus wall (the docs rag.index reads)", f"{statistics.mean(walls['corpus_s']):.1f} s", "—", "—",
        spread(walls["corpus_s"]))


if __name__ == "__main__":
    main()
