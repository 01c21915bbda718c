"""GRPO rollouts: vLLM vs HF ``generate`` tokens/s on the same model and prompts, and the GRPO step-time split.

    .venv/bin/python benchmarks/posttrain_rollout.py --repeats 3

One random-init Llama (``--depth``, default 4: 256 wide, vocab 2048) is saved once; both
generators sample G=8 completions for each of 16 arithmetic prompts in the chat template,
exactly ``--new-tokens`` tokens each (EOS ignored, so both produce the same token count),
temperature 1. vLLM is the in-process engine GRPO uses (float32, eager, CPU KV cache 1 GiB);
HF is ``model.generate`` batched over all 128 sequences. Then ``--grpo-steps`` GRPO steps run
with each backend (weights synced into vLLM every step) and the per-phase step time is
printed as medians. One vLLM engine start serves both parts.
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
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_model(tmp: Path, depth: int) -> Path:
    from pydoc_data.topics import topics

    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from components.models.presets import build_config
    from components.tokenize.bpe import train_bpe_tokenizer

    train_bpe_tokenizer([topics[k] for k in sorted(topics)], 2048, tmp / "model")
    tok = AutoTokenizer.from_pretrained(tmp / "model")
    cfg = build_config(depth=depth, vocab_size=len(tok), max_seq_len=512)
    cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(tmp / "model")
    return tmp / "model"


def spread(xs: list[float]) -> str:
    return f"{min(xs):.0f}-{max(xs):.0f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--grpo-steps", type=int, default=4)
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from vllm import SamplingParams

    from components.rl.config import GRPOConfig, RewardSpec
    from components.rl.grpo import grpo_train
    from components.rl.rewards import build_rewards
    from components.rl.rollout import HFRollout, VLLMRollout
    from components.sft.chat import prompt_text
    from components.sft.config import LoRASettings
    from components.sft.dataset import arithmetic_prompts
    from components.sft.lora import add_lora

    tmp = Path(tempfile.mkdtemp(prefix="posttrain_bench_"))
    model_dir = build_model(tmp, args.depth)
    tok = AutoTokenizer.from_pretrained(model_dir)
    prompts = arithmetic_prompts(16, 20, seed=0)
    texts = [prompt_text(tok, p["prompt"]) for p in prompts]
    G, N = 8, args.new_tokens
    engine = VLLMRollout(model_dir, max_model_len=256, seed=0)
    hf = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tok.padding_side = "left"
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    sp = SamplingParams(n=G, temperature=1.0, max_tokens=N, ignore_eos=True)
    engine.llm.generate(texts[:2], sp, use_tqdm=False)  # warm-up (first call compiles/allocates)
    vllm_tps, hf_tps = [], []
    for _ in range(args.repeats):  # interleaved: load on the shared machine hits both alike
        t0 = time.perf_counter()
        outs = engine.llm.generate(texts, sp, use_tqdm=False)
        n_tok = sum(len(o.token_ids) for r in outs for o in r.outputs)
        vllm_tps.append(n_tok / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        with torch.no_grad():
            out = hf.generate(**enc, do_sample=True, temperature=1.0, top_k=0, max_new_tokens=N, min_new_tokens=N,
                              num_return_sequences=G, pad_token_id=tok.pad_token_id)
        hf_tps.append((out.shape[0] * (out.shape[1] - enc["input_ids"].shape[1])) / (time.perf_counter() - t0))
    v, h = statistics.median(vllm_tps), statistics.median(hf_tps)
    print(f"\nmodel depth={args.depth} params={sum(p.numel() for p in hf.parameters())/1e6:.1f}M, "
          f"{len(texts)} prompts x G={G} x {N} new tokens, {args.repeats} repeats, vLLM start {engine.start_s:.0f}s")
    print("| metric | vLLM (ours) | HF generate | ratio | spread vLLM / HF |")
    print("|---|---|---|---|---|")
    print(f"| rollout tokens/s | {v:.0f} | {h:.0f} | {v / h:.2f}x | {spread(vllm_tps)} / {spread(hf_tps)} |")

    data = [{"prompt": p["prompt"], "answer": p["answer"]} for p in arithmetic_prompts(64, 20, seed=1)]
    rewards = build_rewards([RewardSpec(kind="exact_match"), RewardSpec(kind="regex", pattern=r"-?\d+", weight=0.5)])
    rows = {}
    for backend in ("vllm", "hf"):
        torch.manual_seed(0)
        model = add_lora(AutoModelForCausalLM.from_pretrained(model_dir), LoRASettings())
        cfg = GRPOConfig(num_steps=args.grpo_steps, prompts_per_step=8, group_size=G, max_new_tokens=N,
                         rollout_backend=backend, minibatch_size=32)
        eng = engine if backend == "vllm" else HFRollout(model, tok)
        hist = grpo_train(model, tok, data, rewards, cfg, eng, tmp / f"sync_{backend}", model_dir, lambda r, s: None)
        hist = hist[1:] if len(hist) > 1 else hist  # the first step pays one-off costs
        rows[backend] = {k: statistics.median(h[k] for h in hist) for k in
                         ("time/generation_s", "time/ref_logprobs_s", "time/update_s", "time/weight_sync_s", "time/step_s")}
    engine.close()
    print("\nGRPO step time, median over steps 2.. (s); 8 prompts x G=8, LoRA r=8 on all linear layers")
    print("| phase | vLLM rollouts | HF rollouts |")
    print("|---|---|---|")
    for k in rows["vllm"]:
        print(f"| {k.removeprefix('time/')} | {rows['vllm'][k]:.2f} | {rows['hf'][k]:.2f} |")
    gen_share = rows["vllm"]["time/generation_s"] / rows["vllm"]["time/step_s"]
    print(f"generation share of a step: vLLM {gen_share:.0%}, HF "
          f"{rows['hf']['time/generation_s'] / rows['hf']['time/step_s']:.0%}")


if __name__ == "__main__":
    main()
