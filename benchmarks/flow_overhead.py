"""Flow-engine overhead: the demo recipe through the engine vs the same step functions called directly.

    .venv/bin/python benchmarks/flow_overhead.py --repeats 5

Both sides run on one local Ray (started once, not timed) with a local sqlite MLflow store:
"engine, fresh" recomputes every step (Ray task per step + MLflow nested runs + atomic commit),
"engine, cached" is a re-run that recomputes nothing, "direct" calls the step functions in
this process with a test context (no Ray, no MLflow). Prints a table; medians and spread.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console

from flows.demo_steps import DemoCorpusConfig, DemoStatsConfig, corpus, stats
from flows.engine.context import StepContext
from flows.engine.runner import FlowRunner
from flows.recipe import load_recipe


def direct(workdir: Path) -> float:
    t0 = time.perf_counter()
    c = StepContext.for_test(workdir / "c")
    corpus(c, DemoCorpusConfig())
    s = StepContext.for_test(workdir / "s", {"docs": workdir / "c"})
    stats(s, DemoStatsConfig())
    return time.perf_counter() - t0


def engine(workdir: Path, force: bool) -> float:
    runner = FlowRunner(load_recipe("demo"), workdir=workdir, console=Console(quiet=True))
    t0 = time.perf_counter()
    result = runner.run(force=["corpus"] if force else [])
    assert result.ok
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import ray

    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    rows: dict[str, list[float]] = {"direct": [], "engine, fresh": [], "engine, cached": []}
    with tempfile.TemporaryDirectory() as d:
        wd = Path(d)
        engine(wd, force=False)  # warm: imports, MLflow db creation
        for i in range(args.repeats):  # interleaved
            rows["direct"].append(direct(wd / f"direct{i}"))
            rows["engine, fresh"].append(engine(wd, force=True))
            rows["engine, cached"].append(engine(wd, force=False))
    base = statistics.median(rows["direct"])
    print(f"{'mode':<16} {'median s':>9} {'min':>7} {'max':>7} {'vs direct':>10}")
    for name, xs in rows.items():
        med = statistics.median(xs)
        print(f"{name:<16} {med:9.3f} {min(xs):7.3f} {max(xs):7.3f} {med - base:+9.3f}s")
    print(f"engine overhead per step (fresh, 2 steps): {(statistics.median(rows['engine, fresh']) - base) / 2:.3f}s")


if __name__ == "__main__":
    main()
