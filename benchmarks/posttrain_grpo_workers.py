"""GRPO on Ray Train: step time with 1 vs 2 workers, same model, prompts and settings.

    .venv/bin/python benchmarks/posttrain_grpo_workers.py --model ART/pretrain/<h>/model --data ART/instructions/<h>

Runs the ``rl.grpo`` step function itself (TorchTrainer; rank 0 owns the vLLM engine and
broadcasts each step's rollouts; DDP averages the adapter gradients) ``--repeats`` times per
worker count, alternating. Per run: the median step time and its split (generation on rank 0,
reference log-probs and update on rank 0's share) over steps 2..N, and the run's wall time
(Ray Train and engine start included). Baseline = 1 worker.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PHASES = ("time/step_s", "time/generation_s", "time/ref_logprobs_s", "time/update_s", "time/weight_sync_s")


def one_run(model: Path, data: Path, workers: int, steps: int, out: Path) -> dict:
    import json

    from components.rl.config import GRPOConfig
    from components.rl.steps import run_grpo
    from flows.engine.context import StepContext

    cfg = GRPOConfig(num_steps=steps, prompts_per_step=8, group_size=8, max_new_tokens=16, num_workers=workers,
                     minibatch_size=32, scale_rewards=False, learning_rate=2e-3)
    t0 = time.perf_counter()
    run_grpo(StepContext.for_test(out, {"model": model, "data": data}), cfg)
    wall = time.perf_counter() - t0
    hist = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()][1:]  # step 1 warms up
    return {"wall_s": wall, **{p: statistics.median(h[p] for h in hist) for p in PHASES}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True, help="HF model dir (e.g. the e2e flow's pretrain/model)")
    ap.add_argument("--data", type=Path, required=True, help="sft.dataset artifact (prompts.jsonl)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()

    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    runs: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for w in (1, 2):
                res = one_run(args.model, args.data, w, args.steps, Path(tmp) / f"w{w}_r{r}")
                runs[w].append(res)
                print(f"rep {r} workers {w}: step {res['time/step_s']:.2f}s, wall {res['wall_s']:.1f}s", flush=True)
    print(f"\n{args.steps} steps × 8 prompts × G=8 × 16 tokens, {args.repeats} repeats, alternating")
    print("| metric | 2 workers | 1 worker | ratio | spread (2w / 1w) |\n|---|---|---|---|---|")
    for key in ("wall_s", *PHASES):
        a, b = [x[key] for x in runs[2]], [x[key] for x in runs[1]]
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"| {key} | {ma:.2f} | {mb:.2f} | {ma / mb if mb else float('nan'):.2f} | "
              f"{min(a):.2f}–{max(a):.2f} / {min(b):.2f}–{max(b):.2f} |")


if __name__ == "__main__":
    main()
