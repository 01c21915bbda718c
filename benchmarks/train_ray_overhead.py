"""python benchmarks/train_ray_overhead.py [--repeats 3] [--steps 100] [--depth 4]   (from the repo root)

Ray Train's real cost on the pretraining function. The same ``components.train.loop.train``, same
model, data and production cadence (metrics line every step, validation and a checkpoint every
``--every`` steps, as the e2e recipe does, the one ``ray.train.report`` at the end), run

  (a) under ``TorchTrainer`` with one worker holding 2 CPUs (``build_trainer``, what ``train.pretrain`` runs);
  (b) bare in this process with 2 torch threads and Ray idle beside it (a live local Ray is part of
      both sides: it alone costs a loop on 2 cores some percent).

Runs alternate, each repeated. Reported separately:

- steady tokens/s over the wall clock of steps 3..N *including* the work between steps (metrics
  line, validation, checkpoints) — ``loop_tokens_per_s`` from the loop's summary; the step-only
  figure (``tokens_per_s``, inside forward/backward/step) beside it for comparison;
- end-to-end wall (driver call to return);
- where (a)'s extra wall goes: driver ``fit()`` → our function entered (controller, worker actor,
  process group, imports of our module), the function's own phases (imports, dataset open, model
  build, loop, export), and function return → ``fit()`` return;
- the Ray calls around our function, timed inside the worker (``ray_calls.json``): driver ``fit()``
  → worker function entered (Ray's worker start), the worker record, and the final
  ``ray.train.report``; the window from the worker function's entry to the report's return is
  compared with the bare ``train()`` call's wall; validation and checkpoint seconds on both sides;
- probes that split the start further: a bare Ray actor with 2 CPUs (start + first call), a
  ``DataParallelTrainer`` with a no-op function, and a ``TorchTrainer`` with a no-op function (the
  difference is the gloo process group).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# This checkout's code, not whatever an editable install points at; Ray workers get the driver's
# working directory on their path, hence "from the repo root".
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train_common import median_spread, stdlib_tokens


def _noop(_config=None):
    return None


def probes(work: Path) -> dict[str, float]:
    """Start costs of Ray's own pieces, with nothing of ours inside."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    @ray.remote(num_cpus=2)
    class Probe:
        def ping(self):
            return time.time()

        def import_ours(self):
            t0 = time.perf_counter()
            import components.train.loop  # noqa: F401  (torch, numpy, our modules)
            t1 = time.perf_counter()
            import transformers  # noqa: F401
            from transformers import AutoModelForCausalLM  # noqa: F401
            return {"import_loop_s": t1 - t0, "import_transformers_s": time.perf_counter() - t1}

    out = {}
    t0 = time.perf_counter()
    actor = Probe.remote()
    ray.get(actor.ping.remote())
    out["actor_start_s"] = time.perf_counter() - t0
    out.update(ray.get(actor.import_ours.remote()))
    ray.kill(actor)
    scaling = ScalingConfig(num_workers=1, resources_per_worker={"CPU": 2})
    for name, cls, kw in (("dp_trainer_noop_s", DataParallelTrainer, {}),
                          ("torch_trainer_noop_s", TorchTrainer, {"torch_config": TorchConfig(backend="gloo")})):
        t0 = time.perf_counter()
        cls(_noop, scaling_config=scaling, run_config=RunConfig(storage_path=str(work / "probe"), name=name),
            **kw).fit()
        out[name] = time.perf_counter() - t0
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--every", type=int, default=50, help="validation + checkpoint cadence (e2e recipe: 50)")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--worker-niceness", type=int, default=None,
                        help="PretrainConfig.worker_niceness: the training worker's niceness (default: Ray's 15; "
                             "the bare loop runs at the driver's, usually 0)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import ray
    import torch

    from components.train.config import PretrainConfig
    from components.train.loop import RAY_CALLS_FILE, train
    from components.train.steps import build_trainer

    work = Path(tempfile.mkdtemp(prefix="bench_ray_overhead_"))
    tokens = stdlib_tokens(work / "tokens", seq_len=args.seq_len)
    config = PretrainConfig(model={"depth": args.depth}, strategy="none", num_workers=1, cpus_per_worker=2,
                            micro_batch_size=args.micro_batch, num_steps=args.steps, warmup_steps=5,
                            worker_niceness=args.worker_niceness,
                            checkpoint_every=args.every, eval_every=args.every, eval_batches=2)
    load_start = os.getloadavg()
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    torch.set_num_threads(2)
    runs: dict[str, list[dict]] = {"ray": [], "bare": []}
    probe_runs: list[dict] = []
    try:
        for rep in range(args.repeats):
            for mode in ("ray", "bare") if rep % 2 == 0 else ("bare", "ray"):
                out = work / f"{mode}_{rep}"
                called_unix, start = time.time(), time.perf_counter()
                if mode == "ray":
                    build_trainer(config, tokens, out, run_name=f"bench-{rep}").fit()
                    summary = json.loads((out / "train_summary.json").read_text())
                    calls = json.loads((out / RAY_CALLS_FILE).read_text())
                else:
                    summary = train(config, tokens, out)
                    calls = {"entered_unix": called_unix, "record_worker_s": 0.0, "report_s": 0.0,
                             "function_s": time.perf_counter() - start, "returned_unix": time.time()}
                wall = time.perf_counter() - start
                fn_s = sum(summary[k] for k in ("imports_s", "data_open_s", "model_build_s", "loop_s", "export_s"))
                entered = summary["entered_unix"] - called_unix
                runs[mode].append({**summary, "wall_s": wall, "to_function_s": entered,
                                   "after_function_s": wall - entered - fn_s,
                                   "to_worker_fn_s": calls["entered_unix"] - called_unix,
                                   "record_worker_s": calls["record_worker_s"], "report_s": calls["report_s"],
                                   "ray_window_s": calls["function_s"],
                                   "teardown_s": wall - (calls["returned_unix"] - called_unix),
                                   "nice": float(calls.get("nice", os.getpriority(os.PRIO_PROCESS, 0)))})
                print(f"rep {rep} {mode:4s}: loop {summary['loop_tokens_per_s']:.0f} tok/s (steps only "
                      f"{summary['tokens_per_s']:.0f}), wall {wall:.1f}s, to function {entered:.1f}s, "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
                print("RUN " + json.dumps({"mode": mode, "rep": rep, **{k: round(v, 3) for k, v in runs[mode][-1].items()
                                                                        if isinstance(v, float)}}), flush=True)
                shutil.rmtree(out, ignore_errors=True)
            probe_runs.append(probes(work))
            print(f"rep {rep} probes: {json.dumps({k: round(v, 2) for k, v in probe_runs[-1].items()})}", flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\ndepth {args.depth}, seq {args.seq_len}, micro {args.micro_batch}, {args.steps} steps, validation + "
          f"checkpoint every {args.every}, {args.repeats} repeats interleaved; load average at start "
          f"{load_start[0]:.1f}, at end {os.getloadavg()[0]:.1f}")
    print("| metric | TorchTrainer (1 worker, 2 CPU) | bare loop (Ray idle) | ratio | spread ours / base |")
    print("|---|---|---|---|---|")
    for key, name in (("loop_tokens_per_s", "steady tokens/s incl. per-step work (steps 3..N wall)"),
                      ("tokens_per_s", "tokens/s inside the step only (old figure)"),
                      ("wall_s", "end-to-end wall s"), ("to_function_s", "driver call → function entered s"),
                      ("imports_s", "function: imports s"), ("data_open_s", "function: dataset open s"),
                      ("model_build_s", "function: model build + wrap s"), ("loop_s", "function: step loop s"),
                      ("val_s", "function: validation s (inside the loop window)"),
                      ("checkpoint_s", "function: checkpoint saves s (inside the loop window)"),
                      ("export_s", "function: export + barrier s"),
                      ("after_function_s", "function return → driver s"),
                      ("to_worker_fn_s", "driver call → worker function entered s (Ray's worker start)"),
                      ("record_worker_s", "worker record (ray.train context) s"),
                      ("report_s", "final ray.train.report s"),
                      ("ray_window_s", "worker function entry → report returned s (bare: train() wall)"),
                      ("teardown_s", "worker function returned → fit() returns s"),
                      ("nice", "niceness of the process running the loop")):
        ours, s_ours = median_spread([r[key] for r in runs["ray"]])
        base, s_base = median_spread([r[key] for r in runs["bare"]])
        ratio = f"{ours / base:.3f}" if base > 1e-3 else "—"
        print(f"| {name} | {ours:.2f} | {base:.2f} | {ratio} | ±{s_ours:.0%} / ±{s_base:.0%} |")
    print("\n| start probe (Ray's own pieces) | median s | spread |\n|---|---|---|")
    for key in probe_runs[0]:
        med, spread = median_spread([p[key] for p in probe_runs])
        print(f"| {key} | {med:.2f} | ±{spread:.0%} |")


if __name__ == "__main__":
    main()
