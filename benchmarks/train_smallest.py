"""python benchmarks/train_smallest.py [--seq-len 128] [--steps 20] [--depth 2] [--micro-batch 4]

The smallest pretraining run that visibly lowers loss: the `train.pretrain` step function
(Ray Train, 2 FSDP2 workers) on the bundled stdlib corpus. Prints wall time (Ray Train start
included, `ray.init` excluded), first/last training loss and the final validation loss;
the baseline is the loss at step 1 (an untrained model, ≈ ln(vocab)).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from train_common import stdlib_tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--micro-batch", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import ray

    from components.train.config import PretrainConfig
    from components.train.steps import read_metrics, run_pretrain
    from flows.engine.context import StepContext

    work = Path(tempfile.mkdtemp(prefix="bench_smallest_"))
    tokens = stdlib_tokens(work / "tokens", seq_len=args.seq_len)
    config = PretrainConfig(model={"depth": args.depth}, strategy="fsdp2", num_workers=2,
                            micro_batch_size=args.micro_batch, num_steps=args.steps, warmup_steps=2,
                            eval_every=args.steps, checkpoint_every=args.steps)
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        start = time.perf_counter()
        summary = run_pretrain(StepContext.for_test(work / "out", inputs={"tokens": tokens}), config)
        wall = time.perf_counter() - start
    finally:
        ray.shutdown()
    metrics = read_metrics(work / "out")
    print(f"depth {args.depth}, seq {args.seq_len}, 2 workers x micro {args.micro_batch}, {args.steps} steps")
    print("| metric | ours (last step) | baseline (step 1) | ratio |")
    print("|---|---|---|---|")
    print(f"| train loss | {metrics[args.steps]['loss']:.3f} | {metrics[1]['loss']:.3f} | "
          f"{metrics[args.steps]['loss'] / metrics[1]['loss']:.3f} |")
    print(f"| val loss | {summary['val_loss']:.3f} | | |")
    print(f"| wall s | {wall:.1f} | | |")


if __name__ == "__main__":
    main()
