"""RAG router latency split (embed / search / generate) vs calling the LLM directly.

    .venv/bin/python benchmarks/rag_router.py --queries 30 --repeats 3

Builds a small world in one process: the stdlib pydoc topics indexed by ``rag.index`` (Ray
Data, all-MiniLM-L6-v2, local Qdrant), a random-init tiny Llama (depth 2, BPE vocab 2048, as
the tests use; pass ``--model DIR`` for a trained one) served by ``serve.llm.deployment`` on vLLM CPU, and
the router in front. Queries are derived from the corpus (``rag.evaluate``'s query maker) plus
a few off-topic ones. Per request the router reports its own split (``rag.timings_ms``); the
baseline is the same question sent straight to the LLM's ``/v1/chat/completions`` (no
retrieval, shorter prompt). Greedy, ``max_tokens`` fixed. Serve HTTP on ``--port`` (18100).
The retrieval share is, per request, the router's embed + search time over the request's
end-to-end HTTP time.

``--extra-chunks N`` grows the index by N chunks before the router opens it, so that search runs at
scale (issue 19 asks for 100k): first the real MiniLM chunks cached by ``benchmarks/rag_corpus.py``
(this machine's documentation), then, past those, synthetic clustered unit vectors
(``rag_search.synthetic``); the output says how many of each.

Deployed as the flow deploys it: the LLM app and the router require the stack's bearer key
(``LLMFLOW_API_KEY``; a random one is made for the run when unset) and both calls send it; the router budgets each prompt with
the served model's tokenizer and ``max_model_len`` (so the router's time includes that counting).
"""
from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# This tree's code, here and in the Ray workers (the venv's editable install may point at another checkout).
REPO = str(Path(__file__).resolve().parents[1])
sys.path.insert(0, REPO)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("LLMFLOW_API_KEY", secrets.token_urlsafe(24))
PORT = 18100
MAX_MODEL_LEN = 1024


def tiny_model(out: Path) -> Path:
    from pydoc_data.topics import topics

    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from components.models.presets import build_config
    from components.tokenize.bpe import train_bpe_tokenizer

    texts = [topics[k] for k in sorted(topics)]
    train_bpe_tokenizer(texts, vocab_size=2048, out_dir=out)
    tok = AutoTokenizer.from_pretrained(out)
    torch.manual_seed(0)
    cfg = build_config(depth=2, vocab_size=len(tok), max_seq_len=1024)
    cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    LlamaForCausalLM(cfg).save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def build_index(root: Path) -> Path:
    from pydoc_data.topics import topics

    from components.artifacts import Docs
    from components.rag.config import IndexConfig
    from components.rag.steps import run_index
    from flows.engine.context import StepContext

    keys = sorted(topics)
    Docs.write(({"id": k, "text": topics[k], "source": "pydoc_data.topics", "title": k} for k in keys),
               root / "docs")
    run_index(StepContext.for_test(root / "index", {"docs": root / "docs"}), IndexConfig())
    return root


def pad_index(index_dir: Path, n: int, cache: Path) -> tuple[int, int]:
    """Add ``n`` filler chunks to the Edge shard of a rag.index artifact and re-write its snapshot.
    Returns (real chunks, synthetic chunks) added."""
    import json
    import uuid

    from rag_corpus import load  # beside this script
    from rag_search import synthetic

    from components.rag.config import HnswConfig, SparseConfig
    from components.rag.edge_store import write_snapshot
    from components.rag.qdrant_store import open_store
    from components.rag.sparse import doc_vector

    meta = json.loads((index_dir / "index.json").read_text())
    cached = sum(len(np.load(p, mmap_mode="r")) for p in cache.glob("emb-*.npy"))
    num_real = min(n, cached)
    texts, vecs = load(cache, num_real) if num_real else ([], np.zeros((0, 384), np.float32))
    if n > num_real:
        svecs, stexts, _, _ = synthetic(n - num_real, 0, seed=0)
        texts, vecs = list(texts) + list(stexts), np.concatenate([vecs, svecs])
    sparse = SparseConfig(**meta["sparse"])
    with open_store(index_dir / meta["location"], meta["collection"], embedded="edge",
                    hnsw=HnswConfig(**meta["hnsw"])) as store:
        for i in range(0, n, 1000):
            j = min(i + 1000, n)
            store.upsert([str(uuid.uuid5(uuid.NAMESPACE_URL, f"filler/{k}")) for k in range(i, j)], vecs[i:j],
                         [doc_vector(t, sparse) for t in texts[i:j]],
                         [{"doc_id": f"filler/{k}", "title": "filler", "source": "rag_router padding", "text": texts[k],
                           "chunk_index": 0} for k in range(i, j)])
        store.finish()
    write_snapshot(index_dir / meta["location"], index_dir / meta["snapshot"])
    meta["counts"]["num_points"] += n
    meta["build_id"] = uuid.uuid4().hex
    (index_dir / "index.json").write_text(json.dumps(meta, indent=2))
    return num_real, n - num_real


def stats(xs):
    return float(np.percentile(xs, 50)), float(np.percentile(xs, 99))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--model", default=None, help="HF model dir (default: a random-init tiny Llama)")
    ap.add_argument("--extra-chunks", type=int, default=0, help="filler chunks added to the index (see above)")
    ap.add_argument("--cache", type=Path, default=Path("/work/cache-edge/corpus"), help="rag_corpus.py's cache")
    ap.add_argument("--port", type=int, default=PORT, help="Serve HTTP port (the LLM app and the router)")
    args = ap.parse_args()

    from pydoc_data.topics import topics

    import httpx
    import ray
    from ray import serve

    from components.rag.evaluation import derive_queries
    from serve.llm.app import start
    from serve.llm.config import LLMServeConfig, ServeAppConfig
    from serve.router.app import build_router
    from serve.router.config import RouterConfig

    root = Path(tempfile.mkdtemp(prefix="rag-router-bench-"))
    api_key = os.environ["LLMFLOW_API_KEY"]
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                                       "LLMFLOW_API_KEY": api_key}})
    try:
        t0 = time.perf_counter()
        build_index(root)
        index_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        padded = pad_index(root / "index", args.extra_chunks, args.cache) if args.extra_chunks else (0, 0)
        pad_s = time.perf_counter() - t0
        model = args.model or str(tiny_model(root / "model"))
        llm = start(ServeAppConfig(llm=LLMServeConfig(model=model, served_model_name="tiny", max_model_len=MAX_MODEL_LEN,
                                                      api_key_env="LLMFLOW_API_KEY"),
                                   app_name="bench-llm", http_port=args.port, route_prefix="/llm"))
        handle = serve.get_deployment_handle(llm["deployment"], app_name="bench-llm")
        serve.run(build_router(RouterConfig(index_dir=str(root / "index"), fallback="generate", max_source_chars=400,
                                            retrieval={"top_k": 3}, tokenizer=model, max_model_len=MAX_MODEL_LEN),
                               handle, api_key_env="LLMFLOW_API_KEY"),
                  name="bench-router", route_prefix="/rag")
        queries = [q.query for q in derive_queries(sorted(topics.items()), args.queries, 8, seed=0,
                                                    indexed_doc_ids=topics)]  # build_index indexes every topic
        queries += ["chocolate cake recipe with strawberries", "who won the football world cup"]
        client = httpx.Client(timeout=120, headers={"Authorization": f"Bearer {api_key}"})
        body = {"model": "tiny", "max_tokens": args.max_tokens, "temperature": 0}
        split = {"embed_ms": [], "search_ms": [], "generate_ms": [], "router_total_ms": [], "llm_direct_ms": [],
                 "retrieval_share": []}
        per_repeat = []
        for _ in range(args.repeats):
            rep = {k: [] for k in split}
            for q in queries:  # interleave ours and the baseline so load drifts hit both
                msgs = [{"role": "user", "content": q}]
                t = time.perf_counter()
                r = client.post(f"http://127.0.0.1:{args.port}/rag/v1/chat/completions", json={**body, "messages": msgs})
                rep["router_total_ms"].append((time.perf_counter() - t) * 1e3)
                r.raise_for_status()
                timings = r.json()["rag"]["timings_ms"]
                for k, v in timings.items():
                    rep[k].append(v)
                rep["retrieval_share"].append((timings["embed_ms"] + timings["search_ms"]) / rep["router_total_ms"][-1])
                t = time.perf_counter()
                client.post(f"http://127.0.0.1:{args.port}/llm/v1/chat/completions",
                            json={**body, "messages": msgs}).raise_for_status()
                rep["llm_direct_ms"].append((time.perf_counter() - t) * 1e3)
            per_repeat.append({k: stats(v) for k, v in rep.items()})
        print(f"index build (79 docs) {index_s:.1f} s; padded with {padded[0]} real + {padded[1]} synthetic chunks "
              f"in {pad_s:.1f} s; {len(queries)} queries x {args.repeats} repeats; max_tokens={args.max_tokens}")
        print(f"| metric | ours | baseline (LLM direct) | ratio | spread (p50 over {args.repeats} repeats) |")
        print("|---|---|---|---|---|")
        for k in ("embed_ms", "search_ms", "generate_ms", "router_total_ms"):
            p50s = [r[k][0] for r in per_repeat]
            p99s = [r[k][1] for r in per_repeat]
            base50 = statistics.median(r["llm_direct_ms"][0] for r in per_repeat)
            base99 = statistics.median(r["llm_direct_ms"][1] for r in per_repeat)
            ours50, ours99 = statistics.median(p50s), statistics.median(p99s)
            ratio = f"{ours50 / base50:.2f}x" if k in ("router_total_ms", "generate_ms") else "–"
            base = f"{base50:.1f} / {base99:.1f} ms" if k in ("router_total_ms", "generate_ms") else "–"
            print(f"| router {k[:-3].replace('router_', '')} p50 / p99 | {ours50:.1f} / {ours99:.1f} ms | {base} | {ratio} | "
                  f"±{(max(p50s) - min(p50s)) / 2:.1f} ms |")
        shares = [r["retrieval_share"][0] for r in per_repeat]
        print(f"| retrieval share of request latency, p50 of (embed + search) / end-to-end | "
              f"{100 * statistics.median(shares):.1f}% | – | – | {100 * min(shares):.1f}–{100 * max(shares):.1f}% |")
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
