"""GRPO from an e2e run's SFT adapter in one process (no Ray Train): does the rollout policy's reward
rise, and what do greedy answers look like before and after?

    .venv/bin/python benchmarks/grpo_rollouts.py FLOW_WORKDIR '{"top_k": 20}'

FLOW_WORKDIR is a finished `llmflow run e2e --workdir` folder (pretrain, sft and instructions
artifacts); the JSON overrides GRPOConfig fields on top of flows/recipes/e2e.yaml's GRPO settings
(read from the recipe, so the benchmark follows it). It prints
each step's reward, then a table: the mean reward of the last 7 steps against the first 7 (the last
7 replay the first 7 steps' prompts), and greedy citation / token-F1 / empty answers on 24 held-out
grounded prompts after GRPO against the SFT adapter it started from.
"""
from __future__ import annotations

import glob
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RECIPE = Path(__file__).resolve().parents[1] / "flows" / "recipes" / "e2e.yaml"
K = 7


def main(workdir: str, overrides: dict) -> None:
    import torch
    from transformers import AutoTokenizer

    from components.artifacts import Adapter, Model
    from components.rl.config import GRPOConfig
    from components.rl.grpo import grpo_train
    from components.rl.rewards import build_rewards, citation, token_f1
    from components.rl.rollout import VLLMRollout, merged_state_dict, write_weights
    from components.sft.chat import prompt_text
    from components.sft.lora import add_lora, load_base, load_reference

    art = Path(workdir) / ".llmflow" / "artifacts"
    prompts = [json.loads(line) for line in Path(glob.glob(f"{art}/instructions/*/prompts.jsonl")[0]).read_text().splitlines()]
    held, train = prompts[:24], prompts[24:]
    base = Path(Model.read(glob.glob(f"{art}/pretrain/*")[0]).dir)
    import yaml

    cfg = GRPOConfig.model_validate(yaml.safe_load(RECIPE.read_text())["steps"]["grpo"]["config"] | overrides)
    torch.manual_seed(cfg.seed)
    sft_dir = Adapter.read(glob.glob(f"{art}/sft/*")[0]).dir
    model = add_lora(load_base(base), cfg.lora, adapter_dir=sft_dir)
    if cfg.kl_reference == "start":  # as components/rl/workers.py does
        load_reference(model, sft_dir)
    tok = AutoTokenizer.from_pretrained(base)
    engine = VLLMRollout(base, cfg.vllm_max_model_len, cfg.seed)

    def greedy() -> dict[str, float]:
        engine.sync(write_weights(merged_state_dict(model), base, Path(tempfile.mkdtemp()) / "w"))
        outs = [g[0].text for g in engine.generate([prompt_text(tok, x["prompt"]) for x in held], 1,
                                                   cfg.max_new_tokens, 0.0)]
        for o in outs[:3]:
            print("   greedy:", repr(o[:90]))
        cite, f1 = citation(outs, [x["citation"] for x in held]), token_f1(outs, [x["answer"] for x in held])
        return {"greedy citation": sum(cite) / len(cite), "greedy token-F1": sum(f1) / len(f1),
                "greedy empty answers": float(sum(not o.strip() for o in outs))}

    try:
        before = greedy()
        t0 = time.time()
        history = grpo_train(model, tok, train, build_rewards(cfg.rewards), cfg, engine,
                             Path(tempfile.mkdtemp()) / "sync", base,
                             lambda rec, step: print(step, {k: round(v, 3) for k, v in rec.items()
                                                            if k.startswith("reward") or k in ("kl", "completion_length_mean")},
                                                     flush=True))
        grpo_s = time.time() - t0
        after = greedy()
    finally:
        engine.close()

    def window(key: str, steps) -> float:
        return sum(history[i][key] for i in steps) / len(steps)

    first, last = range(K), range(len(history) - K, len(history))
    rows = [(f"mean reward, last {K} vs first {K} steps (same prompts)", window("reward_mean", last), window("reward_mean", first)),
            ("citation reward share, same windows", window("reward/citation_1", last), window("reward/citation_1", first)),
            ("completion length (tokens), same windows", window("completion_length_mean", last),
             window("completion_length_mean", first))]
    rows += [(f"{k} (after GRPO vs the SFT adapter)", after[k], before[k]) for k in before]
    print(f"\nGRPO {json.dumps(overrides)}: {len(history)} steps in {grpo_s:.0f} s\n")
    print("| metric | ours | baseline | ratio |\n|---|---|---|---|")
    for name, ours, baseline in rows:
        print(f"| {name} | {ours:.3f} | {baseline:.3f} | {ours / baseline if baseline else float('nan'):.2f} |")


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})
