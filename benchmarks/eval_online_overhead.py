"""python benchmarks/eval_online_overhead.py --rounds 20 --requests 10 --modes thread@0.1,process@0.1,thread@1.0

Request latency of a real HTTP chat endpoint (FastAPI + uvicorn on loopback, a tiny HF
Llama generating ``--max-tokens`` greedy tokens) with the online evaluation loop off vs on,
in one run. The server runs in its own process; the client sends sequential requests and
times each end to end. Rounds interleave blocks (off, on@rate…) in alternating order; between
blocks the loop is drained so one block's background work never lands in another's.
"On" = sampling, PII redaction, heuristic scores, MLflow trace (sqlite), query embedding
(all-MiniLM-L6-v2) and drift checks on the sampled share; no judge (judge: skipped).
Modes: ``thread@R`` runs the loop on a thread of the server process; ``process@R`` in a
child process (``OnlineEvalProcess``, like the Serve deployment's own replica).
Prints p50/p99 per mode (median over rounds) and the p50 overhead vs off with its spread.
"""

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
sys.path.insert(0, str(REPO))  # the HF chat model is the tests' (tests/serve/hf_chat_server.py)

PORT = 18203


def make_model(out: Path) -> Path:
    """A debug-preset Llama with a BPE tokenizer trained on the stdlib docs (no download)."""
    from pydoc_data.topics import topics

    import torch
    from transformers import LlamaForCausalLM

    from components.models.presets import build_config
    from components.tokenize.bpe import train_bpe_tokenizer

    tok = train_bpe_tokenizer([topics[k] for k in sorted(topics)], 2048, out)
    cfg = build_config(depth=2, vocab_size=len(tok), max_seq_len=512)
    cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out)
    return out


def serve(model_dir: str, workdir: str) -> None:
    """Server process: the chat endpoint, plus /admin routes to switch the loop and drain it."""
    import uuid

    import uvicorn
    from fastapi import FastAPI

    from serve.online_eval.config import OnlineEvalConfig
    from serve.online_eval.evaluator import OnlineEvaluator, RequestRecord
    from serve.online_eval.process import OnlineEvalProcess
    from tests.serve.hf_chat_server import ChatRequest, HFChatModel

    llm = HFChatModel(model_dir)
    state: dict = {"ev": None}
    evaluators: dict[str, OnlineEvaluator | OnlineEvalProcess] = {}
    app = FastAPI()

    @app.get("/health")
    def health():
        return {"ok": True}

    @app.on_event("shutdown")
    def shutdown():  # uvicorn turns SIGTERM into this: stop the loop's child processes cleanly
        for ev in evaluators.values():
            ev.close(60)

    @app.post("/admin/mode")
    def mode(body: dict):
        name = body["mode"]
        if name == "off":
            state["ev"] = None
            return {"ok": True}
        if name not in evaluators:
            where, rate = name.split("@")
            cfg = OnlineEvalConfig(tracking_uri=f"sqlite:///{workdir}/mlflow-{where}.db", sample_rate=float(rate),
                                   experiment=f"bench-{where}", feedback_path=f"{workdir}/fb-{name}.jsonl")
            evaluators[name] = OnlineEvalProcess(cfg) if where == "process" else OnlineEvaluator(cfg)
        state["ev"] = evaluators[name]
        return {"ok": True}

    @app.post("/admin/drain")
    def drain():
        for ev in evaluators.values():
            ev.flush(600)
        return {k: ev.counters() if isinstance(ev, OnlineEvalProcess) else ev.counters
                for k, ev in evaluators.items()}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest):
        start = time.time_ns()
        text, n_prompt, n_completion = llm.chat(req.messages, req.max_tokens, None)
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        ev = state["ev"]
        if ev is not None:
            ev.submit(RequestRecord(request_id=rid, query=req.messages[-1]["content"], response=text,
                                    start_time_ns=start, end_time_ns=time.time_ns(), messages=req.messages,
                                    prompt_tokens=n_prompt, completion_tokens=n_completion, model=req.model))
        return {"id": rid, "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_completion}}

    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--requests", type=int, default=10, help="requests per block")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--modes", default="thread@0.1,process@0.1,thread@1.0",
                    help="comma list of WHERE@SAMPLE_RATE, WHERE = thread (in the server process) or process")
    ap.add_argument("--serve", nargs=2, metavar=("MODEL_DIR", "WORKDIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(*args.serve)

    import httpx

    work = Path(tempfile.mkdtemp(prefix="eval_bench_"))
    model_dir = make_model(work / "model")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(model_dir), str(work)], env=env)
    url = f"http://127.0.0.1:{PORT}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        client = httpx.Client(base_url=url, timeout=600)
        modes = ["off"] + args.modes.split(",")
        for m in modes[1:]:  # build evaluators (embedder load, MLflow setup) outside the timed blocks
            client.post("/admin/mode", json={"mode": m})
        questions = [f"How do I use the {w} statement in Python, example {i}? Contact me at user{i}@example.com"
                     for i, w in enumerate(["with", "for", "while", "try", "import", "class", "def", "return"] * 40)]
        for q in questions[:10]:  # warm-up
            client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": q}], "max_tokens": args.max_tokens})
        lat: dict[str, list[list[float]]] = {m: [] for m in modes}
        qi = 0
        for r in range(args.rounds):
            order = modes if r % 2 == 0 else modes[::-1]
            for m in order:
                client.post("/admin/mode", json={"mode": m})
                block = []
                for _ in range(args.requests):
                    q = questions[qi % len(questions)]
                    qi += 1
                    t0 = time.perf_counter()
                    resp = client.post("/v1/chat/completions", json={
                        "messages": [{"role": "user", "content": q}], "max_tokens": args.max_tokens})
                    block.append((time.perf_counter() - t0) * 1000)
                    resp.raise_for_status()
                lat[m].append(block)
                client.post("/admin/drain")  # background work stays inside its own block
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        counters = client.post("/admin/drain").json()
    finally:
        proc.terminate()
        proc.wait(30)

    base_p50 = [percentile(b, 0.5) for b in lat["off"]]
    print(f"\n{args.rounds} rounds × {args.requests} sequential requests per mode, max_tokens={args.max_tokens}")
    print("p50/p99 over all requests of a mode; overhead = median over rounds of (round p50 / off round p50) - 1,")
    print("spread = interquartile range of that per-round ratio")
    print(f"{'mode':<12} {'p50 ms':>8} {'p99 ms':>8} {'p50 overhead':>13} {'ratio IQR':>16}")
    results = {}
    for m in modes:
        pooled = [x for b in lat[m] for x in b]
        ratios = sorted(percentile(b, 0.5) / base for b, base in zip(lat[m], base_p50))
        results[m] = {"p50_ms": percentile(pooled, 0.5), "p99_ms": percentile(pooled, 0.99),
                      "p50_ratio": statistics.median(ratios), "ratio_q1": percentile(ratios, 0.25),
                      "ratio_q3": percentile(ratios, 0.75)}
        rm = results[m]
        print(f"{m:<12} {rm['p50_ms']:8.1f} {rm['p99_ms']:8.1f} {(rm['p50_ratio'] - 1) * 100:+12.1f}% "
              f"{rm['ratio_q1']:7.3f}..{rm['ratio_q3']:.3f}")
    print("loop counters:", json.dumps(counters))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
