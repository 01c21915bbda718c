"""GRPO rollout engine with and without Intel OpenMP + tcmalloc preloaded (``VLLMRollout(cpu_preload=...)``).

    .venv/bin/python benchmarks/rollout_preload.py --repeats 5

Two in-process rollout engines on the same random-init Llama (``posttrain_rollout.build_model``),
one started with vLLM's default OpenMP (libgomp) and one with ``components/cpu_preload.py``'s
preload; both sample G=8 completions for 16 arithmetic prompts, ``--new-tokens`` each (EOS
ignored), temperature 1, the calls alternating so load drift on a shared machine hits both.
Prints median tokens/s, the ratio and the spread, plus the load average.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=32)
    args = ap.parse_args()

    from posttrain_rollout import build_model
    from transformers import AutoTokenizer
    from vllm import SamplingParams

    from components.rl.rollout import VLLMRollout
    from components.sft.chat import prompt_text
    from components.sft.dataset import arithmetic_prompts

    load_start = os.getloadavg()
    model_dir = build_model(Path(tempfile.mkdtemp(prefix="rollout_preload_")), args.depth)
    tok = AutoTokenizer.from_pretrained(model_dir)
    texts = [prompt_text(tok, p["prompt"]) for p in arithmetic_prompts(16, 20, seed=0)]
    # Preload first: starting an engine without one makes vLLM put libgomp into this process's
    # LD_PRELOAD for good, and an OpenMP runtime already named there is left alone.
    engines = {"preload": VLLMRollout(model_dir, max_model_len=256, seed=0, cpu_preload=True)}
    engines["gomp"] = VLLMRollout(model_dir, max_model_len=256, seed=0, cpu_preload=False)
    sp = SamplingParams(n=8, temperature=1.0, max_tokens=args.new_tokens, ignore_eos=True, seed=0)
    tps: dict[str, list[float]] = {k: [] for k in engines}
    for engine in engines.values():
        engine.llm.generate(texts[:2], sp, use_tqdm=False)  # warm-up
    for rep in range(args.repeats):
        for name in (list(engines) if rep % 2 == 0 else list(engines)[::-1]):
            t0 = time.perf_counter()
            outs = engines[name].llm.generate(texts, sp, use_tqdm=False)
            tps[name].append(sum(len(o.token_ids) for r in outs for o in r.outputs) / (time.perf_counter() - t0))
    for engine in engines.values():
        engine.close()
    ours, base = statistics.median(tps["preload"]), statistics.median(tps["gomp"])
    print(f"\ndepth {args.depth}, 16 prompts x G=8 x {args.new_tokens} tokens, {args.repeats} repeats interleaved; "
          f"load average start {load_start[0]:.1f}, end {os.getloadavg()[0]:.1f}")
    print("| metric | preload (iomp + tcmalloc) | libgomp (vLLM default) | ratio | runs ours / base |")
    print("|---|---|---|---|---|")
    print(f"| rollout tokens/s | {ours:.0f} | {base:.0f} | {ours / base:.2f} | "
          f"{min(tps['preload']):.0f}-{max(tps['preload']):.0f} / {min(tps['gomp']):.0f}-{max(tps['gomp']):.0f} |")


if __name__ == "__main__":
    main()
