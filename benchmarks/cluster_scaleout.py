"""The cost of distribution: the multinode recipe submitted to one Ray node vs three, same total CPUs.

    flock /tmp/llmflow-heavy.lock .venv/bin/python benchmarks/cluster_scaleout.py --repeats 2

Each run starts a fresh local cluster (flows/engine/local_cluster.py; ports 18750–18794): either
one head with 3 logical CPUs (baseline) or a head + 2 worker nodes with 1 CPU each (ours), submits
``flows/recipes/multinode.yaml`` with ``llmflow submit`` (Ray Jobs API, this checkout as working_dir,
a fresh local artifact root so nothing is cached, a local sqlite MLflow store), waits for it, and
stops the cluster. Runs alternate between the two layouts. Reported: the job's wall time (submit to
SUCCEEDED), the flow's own wall time (from its run summary) and the cluster's start time.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flows.engine import local_cluster
from flows.engine.cluster import ray_auth_env

REPO = Path(__file__).resolve().parents[1]
LAYOUTS = {"1 node x 3 CPUs": (0, 3), "3 nodes x 1 CPU": (2, 1)}


def one_run(layout: str, scratch: Path) -> dict[str, float]:
    num_workers, cpus = LAYOUTS[layout]
    workdir = Path(tempfile.mkdtemp(dir=scratch))
    t0 = time.perf_counter()
    state = local_cluster.up(workdir, num_workers=num_workers, num_cpus_per_node=cpus)
    up_s = time.perf_counter() - t0
    try:
        env = {**os.environ, **ray_auth_env(workdir), "PYTHONPATH": str(REPO)}
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "flows.cli", "submit", "multinode", "--address", state.dashboard_url,
             "--set", f"artifact_root={workdir / 'artifacts'}",
             "--env", f"MLFLOW_TRACKING_URI=sqlite:///{workdir / 'mlflow.db'}",
             "--env", f"LLMFLOW_CACHE={workdir / 'cache'}"],
            cwd=REPO, env=env, text=True, capture_output=True, timeout=1200, check=False)
        job_s = time.perf_counter() - t0
    finally:
        local_cluster.down(workdir)
    if out.returncode != 0:
        raise RuntimeError(f"{layout}: the job failed:\n{out.stdout[-4000:]}\n{out.stderr[-2000:]}")
    flow_s = float(re.search(r"flow multinode — ([\d.]+)s", out.stdout).group(1))
    return {"job_s": job_s, "flow_s": flow_s, "up_s": up_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="llmflow-cluster-bench-"))
    results: dict[str, list[dict[str, float]]] = {k: [] for k in LAYOUTS}
    for i in range(args.repeats):
        for layout in LAYOUTS:
            r = one_run(layout, scratch)
            results[layout].append(r)
            print(f"run {i + 1} {layout}: job {r['job_s']:.1f} s, flow {r['flow_s']:.1f} s, "
                  f"cluster up {r['up_s']:.1f} s; load {os.getloadavg()[0]:.2f}", flush=True)
    base, ours = results["1 node x 3 CPUs"], results["3 nodes x 1 CPU"]
    print("\n| metric | ours (3 nodes x 1 CPU) | baseline (1 node x 3 CPUs) | ratio | spread ours / baseline |")
    print("|---|---|---|---|---|")
    for key, what in (("job_s", "job wall, submit to SUCCEEDED (s)"), ("flow_s", "flow wall in the job (s)"),
                      ("up_s", "cluster start (s)")):
        o, b = statistics.median(r[key] for r in ours), statistics.median(r[key] for r in base)
        spread = (f"{min(r[key] for r in ours):.1f}–{max(r[key] for r in ours):.1f} / "
                  f"{min(r[key] for r in base):.1f}–{max(r[key] for r in base):.1f}")
        print(f"| {what} | {o:.1f} | {b:.1f} | {o / b:.2f}x | {spread} |")
    print(f"\nmedians of {args.repeats} runs each, alternating; machine: {os.cpu_count()} cores; "
          f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
