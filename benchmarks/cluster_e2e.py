"""The main job (`flows/recipes/e2e.yaml` at the e2e test's smallest size) submitted with `llmflow submit`
to the 3-node local cluster, artifacts on an S3 API: where every step and Ray Train worker ran.

    flock /tmp/llmflow-heavy.lock timeout 2400 .venv/bin/python benchmarks/cluster_e2e.py

Starts moto's S3 server (127.0.0.1:18795), an MLflow server with its artifacts on it (18796) and a
head + 2 worker nodes (flows/engine/local_cluster.py, ports 20000–20299, 1 logical CPU each) or,
with ``--layout 1x3``, one node with 3 logical CPUs (the baseline of the cost of distribution); submits e2e with E2E_SMALLEST (tests/flows/conftest.py; Serve on 18798) and
``artifact_root=s3://llmflow/e2e-<time>``; waits for the job; reads every step's MLflow run and prints
the node each step ran on (``llmflow.node_id``) and each Ray Train rank's (``llmflow.train_worker.*``).
Exits non-zero unless the job succeeded and, on 3 nodes, the steps ran on ≥ 2 nodes and every Ray
Train step with ≥ 2 workers had them on ≥ 2 nodes (a 1-worker step has one node by definition). Everything it started is stopped at the end. Too slow for CI (the e2e flow
alone is ~10 minutes on 2 cores), so it is a script; its numbers are in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flows.engine import local_cluster
from flows.engine.cluster import ray_auth_env
from tests.cluster.s3_server import BUCKET, s3_env, start_s3_server, stop_s3_server
from tests.fixtures.mlflow_store import start_mlflow_server, stop_mlflow_server

SERVE_PORT = 18798
MLFLOW_PORT = 18796
TRAIN_STEPS = ("pretrain", "draft", "sft", "grpo")  # the steps that run Ray Train workers
LAYOUTS = {"3x1": (2, 1), "1x3": (0, 3)}  # (worker nodes, logical CPUs per node): the same 3 CPUs either way


def smallest_overrides() -> list[str]:
    from tests.flows.conftest import E2E_HTTP_PORT, E2E_SMALLEST

    return [o.replace(str(E2E_HTTP_PORT), str(SERVE_PORT)) for o in E2E_SMALLEST]


def where_it_ran(mlflow_uri: str, names: dict[str, str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(step -> node name, Ray Train step -> node names of its ranks) from the flow's latest MLflow runs."""
    from components.tracking.mlflow_tracking import search_runs

    runs = search_runs(mlflow_uri, "llmflow")
    parent = max((r for r in runs if "mlflow.parentRunId" not in r.data.tags), key=lambda r: r.info.start_time)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    steps, ranks = {}, {}
    for r in children:
        tags = r.data.tags
        step = tags["llmflow.step"]
        steps[step] = names.get(tags.get("llmflow.node_id", ""), tags.get("llmflow.node_id", "?"))
        rank_tags = sorted(k for k in tags if re.fullmatch(r"llmflow\.train_worker\.rank\d+\.node_id", k))
        if rank_tags:
            ranks[step] = [names.get(tags[k], tags[k]) for k in rank_tags]
    return steps, ranks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="3x1",
                        help="3x1: head + 2 worker nodes, 1 CPU each; 1x3: one node with 3 CPUs (baseline)")
    parser.add_argument("--timeout", type=int, default=2100, help="seconds to wait for the job")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="llmflow-cluster-e2e-"))
    print(f"workdir {work}; load {os.getloadavg()}", flush=True)
    s3, endpoint = start_s3_server(work / "moto.log")
    os.environ.update(s3_env(endpoint))
    os.environ["MLFLOW_ARTIFACTS_DESTINATION"] = f"s3://{BUCKET}/mlflow"
    (work / "mlflow").mkdir()
    mlflow = start_mlflow_server(work / "mlflow", MLFLOW_PORT)
    mlflow_uri = f"http://127.0.0.1:{MLFLOW_PORT}"
    t0 = time.perf_counter()
    # Its own port range, wide enough for the e2e flow's worker processes (the tests' 45 ports are not).
    num_workers, cpus = LAYOUTS[args.layout]
    state = local_cluster.up(work / "cluster", num_workers=num_workers, num_cpus_per_node=cpus, base_port=20000,
                             port_span=300)
    up_s = time.perf_counter() - t0
    ok = False
    try:
        env = {**os.environ, **ray_auth_env(work / "cluster"), "PYTHONPATH": str(REPO), "COLUMNS": "250"}
        code = ("import json, sys; from ray.util.state import list_nodes; "
                "print(json.dumps({n.node_id: [k for k in n.resources_total if k.startswith('llmflow_')][0]"
                ".removeprefix('llmflow_') for n in list_nodes(address=sys.argv[1])}))")
        import json

        names = json.loads(subprocess.run([sys.executable, "-c", code, state.dashboard_url], env=env, text=True,
                                          capture_output=True, check=True).stdout.strip().splitlines()[-1])
        root = f"s3://{BUCKET}/e2e-{int(time.time())}"
        job_env = {**s3_env(endpoint), "MLFLOW_TRACKING_URI": mlflow_uri, "LLMFLOW_CACHE": str(work / "cache"),
                   "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "VLLM_CPU_KVCACHE_SPACE": "1",
                   "VLLM_CPU_OMP_THREADS_BIND": "nobind",
                   # cluster/runtime_env.yaml names the KubeRay cluster's Qdrant service; this laptop cluster
                   # has none, so the index is the embedded engine's (the first run failed to resolve it)
                   "QDRANT_URL": ""}
        # All 79 topics indexed, as the recipe does (smoke asks about topics past the test's first 20); not
        # the ~500 module docs after them (5,995 chunks: embedding them on a 1-CPU node took ~6 minutes).
        sets = [*smallest_overrides(), "steps.index.config.max_docs=79", f"artifact_root={root}"]
        t0 = time.perf_counter()
        log = work / "job.log"  # written as the job streams, so a timeout still leaves how far it got
        with log.open("w") as out:
            try:
                sub = subprocess.run(
                    [sys.executable, "-m", "flows.cli", "submit", "e2e", "--address", state.dashboard_url,
                     *(a for s in sets for a in ("--set", s)),
                     *(a for k, v in job_env.items() for a in ("--env", f"{k}={v}"))],
                    cwd=REPO, env=env, text=True, stdout=out, stderr=subprocess.STDOUT, timeout=args.timeout,
                    check=False)
            except subprocess.TimeoutExpired:
                print(f"the job did not end within {args.timeout} s; its log so far:\n"
                      + log.read_text()[-6000:], flush=True)
                return 1
        job_s = time.perf_counter() - t0
        sub.stdout, sub.stderr = log.read_text(), ""
        flow = re.search(r"flow e2e — ([\d.]+)s", sub.stdout)
        print(f"layout {args.layout}: job rc {sub.returncode}: {job_s:.1f} s (flow {flow.group(1) if flow else '?'} s); cluster up "
              f"{up_s:.1f} s; load {os.getloadavg()}; log {work / 'job.log'}", flush=True)
        if sub.returncode != 0:
            print(sub.stdout[-6000:] + sub.stderr[-3000:])
            return 1
        steps, ranks = where_it_ran(mlflow_uri, names)
        print("\n| step | node | Ray Train ranks' nodes |\n|---|---|---|")
        for step in sorted(steps):
            print(f"| {step} | {steps[step]} | {', '.join(ranks.get(step, [])) or '—'} |")
        step_nodes = set(steps.values())
        # distinct nodes of each Ray Train step's ranks, for the steps that ran more than one worker
        spread = {s: len(set(ranks[s])) for s in TRAIN_STEPS if len(ranks.get(s, [])) >= 2}
        ok = args.layout == "1x3" or (len(step_nodes) >= 2 and all(n >= 2 for n in spread.values()))
        print(f"\nsteps on {len(step_nodes)} nodes ({sorted(step_nodes)}); multi-worker Ray Train steps' distinct "
              f"worker nodes {spread}; {'OK' if ok else 'MISSED'}")
    finally:
        local_cluster.down(work / "cluster")
        stop_mlflow_server(mlflow)
        stop_s3_server(s3)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
