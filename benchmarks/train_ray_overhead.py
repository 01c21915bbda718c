"""python benchmarks/train_ray_overhead.py [--repeats 3] [--steps 25] [--depth 4]

Ray Train's cost: the same training function, same model, same data, run (a) under
``TorchTrainer`` with one worker holding 2 CPUs and (b) bare in this process with 2 torch
threads while the same local Ray cluster is alive (a live Ray alone costs a bare loop
10-15% on 2 cores, so the baseline carries it too). Runs alternate, each is repeated;
we report the median steady-state tokens/s (first 2 steps of every run skipped) with the
spread, and the end-to-end wall time (Ray's worker start-up included). Goal: ≤ 5% on
steady-state tokens/s.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from train_common import median_spread, stdlib_tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--micro-batch", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import ray
    import torch

    from components.train.config import PretrainConfig
    from components.train.loop import train
    from components.train.steps import build_trainer

    work = Path(tempfile.mkdtemp(prefix="bench_ray_overhead_"))
    tokens = stdlib_tokens(work / "tokens", seq_len=args.seq_len)
    config = PretrainConfig(model={"depth": args.depth}, strategy="none", num_workers=1, cpus_per_worker=2,
                            micro_batch_size=args.micro_batch, num_steps=args.steps, warmup_steps=2,
                            checkpoint_every=args.steps, eval_every=args.steps, eval_batches=1)
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    torch.set_num_threads(2)
    results: dict[str, dict[str, list[float]]] = {"ray": {"tps": [], "wall": []}, "bare": {"tps": [], "wall": []}}
    try:
        for rep in range(args.repeats):
            for mode in ("ray", "bare") if rep % 2 == 0 else ("bare", "ray"):
                out = work / f"{mode}_{rep}"
                start = time.perf_counter()
                if mode == "ray":
                    build_trainer(config, tokens, out, run_name=f"bench-{rep}").fit()
                    import json
                    summary = json.loads((out / "train_summary.json").read_text())
                else:
                    summary = train(config, tokens, out)
                results[mode]["wall"].append(time.perf_counter() - start)
                results[mode]["tps"].append(summary["tokens_per_s"])
                print(f"rep {rep} {mode:4s}: {summary['tokens_per_s']:.0f} tokens/s, "
                      f"wall {results[mode]['wall'][-1]:.1f}s", flush=True)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\ndepth {args.depth}, seq {args.seq_len}, micro {args.micro_batch}, {args.steps} steps, "
          f"{args.repeats} repeats, interleaved")
    print("| metric | TorchTrainer (1 worker) | bare loop (Ray alive) | ratio | spread ours / base |")
    print("|---|---|---|---|---|")
    for key, name in (("tps", "steady tokens/s"), ("wall", "end-to-end wall s")):
        ours, s_ours = median_spread(results["ray"][key])
        base, s_base = median_spread(results["bare"][key])
        print(f"| {name} | {ours:.1f} | {base:.1f} | {ours / base:.3f} | ±{s_ours:.0%} / ±{s_base:.0%} |")


if __name__ == "__main__":
    main()
