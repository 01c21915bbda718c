"""python benchmarks/tune_sweep.py [--repeats 3] [--budgets 1e10,2e10]

What Ray Tune costs and gives a scaling sweep on 2 cores. The same planned trials (the
`sweep` recipe's: 4 of the smallest Llamas per budget, D = C/6N, 512-token BPE over the
stdlib docs, 64-token blocks) run three ways, interleaved, each repeated:

  sequential  every trial one after another in this process (``run_trial`` bare, 1 thread),
              with the same local Ray cluster alive — the baseline
  tune x2     one Tuner, one 1-CPU worker per trial, 2 trials at a time
  tune x1     one Tuner, 1 trial at a time — against sequential this is Tune's own cost

Parallel efficiency = sequential / (2 · tune x2); per-trial overhead = (tune x1 − sequential) / trials.
On a shared machine the 2 cores may not both be ours: a CPU probe (the same fixed matmul work in
1 process, then split over 2 processes) measures the speedup the machine offered during each
repeat, and the table reports Tune's speedup against it too.
Reports medians and the spread (half the min–max range over the median).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from train_common import median_spread, stdlib_tokens


def _burn(n: int) -> None:
    import numpy as np
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        a = np.random.default_rng(0).random((192, 192))
        for _ in range(n):
            a = np.tanh(a @ a)


def cpu_probe(work: int = 1200) -> float:
    """Speedup the machine gives right now: fixed work in 1 process vs split over 2 processes."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    times = []
    for split in (1, 2):
        procs = [ctx.Process(target=_burn, args=(work // split,)) for _ in range(split)]
        t0 = time.perf_counter()
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        times.append(time.perf_counter() - t0)
    return times[0] / times[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--budgets", default="1e10,2e10")
    args = ap.parse_args()

    import ray
    from ray import tune

    from components.artifacts import Tokens
    from components.tune.config import ModelShape, SweepConfig
    from components.tune.plan import plan_trials
    from components.tune.sweep import run_phase
    from components.tune.trial import run_trial

    work = Path(tempfile.mkdtemp(prefix="tune_bench_"))
    tokens = stdlib_tokens(work / "tokens", seq_len=64, vocab_size=512)
    manifest = Tokens.read(tokens)
    base = {"budgets_flops": [float(b) for b in args.budgets.split(",")], "batch_size": 8, "learning_rate": 1e-2,
            "num_reports": 2, "storage_path": str(work / "tune"), "resume": False,
            "shapes": [ModelShape(depth=1, width=32), ModelShape(depth=2, width=32),
                       ModelShape(depth=1, width=64), ModelShape(depth=1, width=96)]}
    trials, _ = plan_trials(SweepConfig(**base), manifest.vocab_size, manifest.seq_len)
    print(f"{len(trials)} trials, {sum(t.num_steps for t in trials)} steps in all", flush=True)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)

    def sequential(rep: int) -> float:
        config = SweepConfig(**base)
        t0 = time.perf_counter()
        for t in trials:
            run_trial(t.to_dict(), config, tokens, work / f"seq{rep}" / t.name)
        return time.perf_counter() - t0

    def tuned(rep: int, concurrent: int) -> float:
        config = SweepConfig(**base, max_concurrent_trials=concurrent)
        t0 = time.perf_counter()
        rows = run_phase(f"bench-{rep}-x{concurrent}", {"trial": tune.grid_search([t.to_dict() for t in trials])},
                         config, tokens, callbacks=[])
        assert all(r["finished"] for r in rows)
        return time.perf_counter() - t0

    run_trial(trials[0].to_dict(), SweepConfig(**base), tokens, work / "warmup")  # imports, allocator
    times: dict[str, list[float]] = {"sequential": [], "tune x2": [], "tune x1": []}
    probes: list[float] = []
    for rep in range(args.repeats):
        probes.append(cpu_probe())
        times["sequential"].append(sequential(rep))
        times["tune x2"].append(tuned(rep, 2))
        times["tune x1"].append(tuned(rep, 1))
        print(f"repeat {rep}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items())
              + f", machine 2-process speedup {probes[-1]:.2f}x", flush=True)
    ray.shutdown()

    seq, seq_sp = median_spread(times["sequential"])
    x2, x2_sp = median_spread(times["tune x2"])
    x1, x1_sp = median_spread(times["tune x1"])
    eff = [s / (2 * t) for s, t in zip(times["sequential"], times["tune x2"])]
    over = [(t - s) / len(trials) for s, t in zip(times["sequential"], times["tune x1"])]
    eff_med, eff_sp = median_spread(eff)
    over_med, _ = median_spread(over)
    print("\n| metric | ours | baseline | ratio | spread |\n|---|---|---|---|---|")
    print(f"| sweep wall, {len(trials)} trials, 2 at a time (s) | {x2:.1f} | {seq:.1f} (sequential) | "
          f"{seq / x2:.2f}x speedup | ±{100 * x2_sp:.0f}% / ±{100 * seq_sp:.0f}% |")
    print(f"| parallel efficiency on 2 cores | {100 * eff_med:.0f}% | 100% (ideal) | {eff_med:.2f} | ±{100 * eff_sp:.0f}% |")
    print(f"| sweep wall, 1 at a time (s) | {x1:.1f} | {seq:.1f} (sequential) | {x1 / seq:.2f} | "
          f"±{100 * x1_sp:.0f}% |")
    print(f"| Tune overhead per trial (s) | {over_med:.2f} | 0 | - | min {min(over):.2f} max {max(over):.2f} |")
    probe_med, probe_sp = median_spread(probes)
    speedups = [s / t for s, t in zip(times["sequential"], times["tune x2"])]
    print(f"| sweep speedup vs machine's 2-process speedup | {median_spread(speedups)[0]:.2f}x | "
          f"{probe_med:.2f}x (CPU probe) | {median_spread(speedups)[0] / probe_med:.2f} | ±{100 * probe_sp:.0f}% |")


if __name__ == "__main__":
    main()
