"""python benchmarks/train_strategies.py [--repeats 3] [--steps 20] [--depth 4] [--strategies fsdp2,zero2,zero3]

FSDP2 vs DeepSpeed ZeRO on 2 Ray Train CPU workers (1 CPU each, gloo): the same model,
data, global batch and steps. Runs alternate between strategies, each repeated; we report
median steady-state tokens/s (first 2 steps skipped) with the spread, and wall time per
run. FSDP2 is the baseline column.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from train_common import median_spread, stdlib_tokens

STRATEGIES = {"fsdp2": {"strategy": "fsdp2"}, "zero1": {"strategy": "deepspeed", "zero_stage": 1},
              "zero2": {"strategy": "deepspeed", "zero_stage": 2}, "zero3": {"strategy": "deepspeed", "zero_stage": 3}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--strategies", default="fsdp2,zero2,zero3")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    names = args.strategies.split(",")

    import ray

    from components.train.config import PretrainConfig
    from components.train.steps import build_trainer

    work = Path(tempfile.mkdtemp(prefix="bench_strategies_"))
    tokens = stdlib_tokens(work / "tokens", seq_len=args.seq_len)
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    tps: dict[str, list[float]] = {n: [] for n in names}
    wall: dict[str, list[float]] = {n: [] for n in names}
    try:
        for rep in range(args.repeats):
            order = names if rep % 2 == 0 else names[::-1]
            for name in order:
                config = PretrainConfig(model={"depth": args.depth}, num_workers=2, cpus_per_worker=1,
                                        micro_batch_size=args.micro_batch, num_steps=args.steps, warmup_steps=2,
                                        checkpoint_every=args.steps, eval_every=args.steps, eval_batches=1,
                                        **STRATEGIES[name])
                out = work / f"{name}_{rep}"
                start = time.perf_counter()
                build_trainer(config, tokens, out, run_name=f"bench-{name}-{rep}").fit()
                wall[name].append(time.perf_counter() - start)
                tps[name].append(json.loads((out / "train_summary.json").read_text())["tokens_per_s"])
                print(f"rep {rep} {name}: {tps[name][-1]:.0f} tokens/s, wall {wall[name][-1]:.1f}s", flush=True)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    base, _ = median_spread(tps[names[0]])
    print(f"\ndepth {args.depth}, seq {args.seq_len}, 2 workers x micro {args.micro_batch}, {args.steps} steps, "
          f"{args.repeats} repeats, interleaved; baseline = {names[0]}")
    print("| strategy | tokens/s (median) | ratio vs baseline | spread | wall s (median) |")
    print("|---|---|---|---|---|")
    for name in names:
        med, spread = median_spread(tps[name])
        print(f"| {name} | {med:.0f} | {med / base:.3f} | ±{spread:.0%} | {median_spread(wall[name])[0]:.1f} |")


if __name__ == "__main__":
    main()
