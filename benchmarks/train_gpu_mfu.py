"""python benchmarks/train_gpu_mfu.py [--preset base] [--seq-len 2048] [--micro-batch 8] [--steps 30] [--compile]

bf16 MFU of the bare training function (one process, no Ray) on one GPU, against a
hand-written baseline loop measured in the same run: the same HF Llama, SDPA, fused
AdamW, bf16 autocast, random tokens. MFU = tokens/s × (6·N_non-embedding + 12·L·d·seq)
/ peak (components/train/flops.py; peak from components/train/device.py, 989 TFLOP/s
for an H100 SXM). Needs CUDA; exits with a message otherwise.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from train_common import median_spread, random_tokens


def baseline_tokens_per_s(model_config, seq_len: int, micro: int, steps: int, compile_: bool) -> float:
    """The plainest loop: what `train()` must match or beat on the same shapes."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(model_config).cuda()
    if compile_:
        for layer in model.model.layers:
            layer.compile()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = torch.randint(0, model_config.vocab_size, (micro, seq_len), device="cuda")
    times = []
    for _ in range(steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    del model, opt
    torch.cuda.empty_cache()
    steady = times[2:]
    return micro * seq_len * len(steady) / sum(steady)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="base")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--strategy", default="none", choices=["none", "fsdp2"])
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    if not torch.cuda.is_available():
        raise SystemExit("train_gpu_mfu.py needs CUDA; on CPU use train_ray_overhead.py / train_strategies.py")
    from components.train import device
    from components.train.config import PretrainConfig
    from components.train.flops import mfu
    from components.train.loop import train

    work = Path(tempfile.mkdtemp(prefix="bench_mfu_"))
    tokens = random_tokens(work / "tokens", seq_len=args.seq_len,
                           num_blocks=args.micro_batch * args.steps + 16)
    config = PretrainConfig(model={"preset": args.preset}, strategy=args.strategy, num_workers=1,
                            micro_batch_size=args.micro_batch, num_steps=args.steps, warmup_steps=2,
                            checkpoint_every=10**6, eval_every=10**6, eval_batches=1, precision="bf16",
                            compile=args.compile)
    model_config = config.model.build(32000, args.seq_len)
    info = device.describe("bf16")
    ours, base = [], []
    for rep in range(args.repeats):
        summary = train(config, tokens, work / f"run_{rep}")
        shutil.rmtree(work / f"run_{rep}", ignore_errors=True)
        ours.append(summary["tokens_per_s"])
        base.append(baseline_tokens_per_s(model_config, args.seq_len, args.micro_batch, args.steps, args.compile))
        print(f"rep {rep}: ours {ours[-1]:.0f} tok/s, baseline {base[-1]:.0f} tok/s", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    (o, so), (b, sb) = median_spread(ours), median_spread(base)
    print(f"\n{info.name}, preset {args.preset}, seq {args.seq_len}, micro {args.micro_batch}, "
          f"compile={args.compile}, strategy={args.strategy}")
    print("| metric | ours (train()) | baseline (plain loop) | ratio | spread ours / base |")
    print("|---|---|---|---|---|")
    print(f"| tokens/s | {o:.0f} | {b:.0f} | {o / b:.3f} | ±{so:.0%} / ±{sb:.0%} |")
    m_o = mfu(o, model_config, args.seq_len, 1, info.peak_flops)
    m_b = mfu(b, model_config, args.seq_len, 1, info.peak_flops)
    if m_o is not None:
        print(f"| MFU | {m_o:.1%} | {m_b:.1%} | {m_o / m_b:.3f} | |")


if __name__ == "__main__":
    main()
