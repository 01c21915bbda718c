"""Grounded SFT + GRPO on a real pretrained model: does the small model learn to copy and cite?

    PYTHONPATH=. .venv/bin/python benchmarks/grpo_grounded.py --model ART/pretrain/<h> --docs ART/corpus/<h>

Runs the step functions themselves on a local Ray (``sft.dataset`` → ``sft.lora`` → ``rl.grpo``)
with the settings of flows/recipes/e2e.yaml unless overridden (``--sft '{"num_steps": 60}'``,
``--grpo '{...}'``, ``--data '{...}'``, JSON merged into the configs), and prints:

- SFT: held-out response loss before/after (plain + grounded held-out chats), and the share of
  greedy answers to held-out grounded prompts that contain a span of >= 5 words of the gold
  source (``components.eval.text_metrics.source_span_rate``): the base model vs the adapter (and
  vs the GRPO adapter);
- GRPO: reward of the first / last k steps, the gain and its 95% bootstrap interval;
- wall seconds of each step.

Baseline = the base model (no adapter) on the same prompts, measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

E2E = Path(__file__).resolve().parents[1] / "flows" / "recipes" / "e2e.yaml"


def recipe_config(step: str) -> dict:
    import yaml

    return dict(yaml.safe_load(E2E.read_text())["steps"][step].get("config") or {})


def greedy_answers(model_artifact: Path, adapter: Path | None, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy answers as the router gets them: the grounded prompt as the only (user) turn, no system prompt."""
    import torch

    from components.artifacts import Adapter, Model
    from components.eval.model_eval import load_model
    from components.sft.chat import prompt_text

    model, tok, device = load_model(Model.read(model_artifact).dir, Adapter.read(adapter).dir if adapter else None)
    texts = [prompt_text(tok, p) for p in prompts]
    out: list[str] = []
    with torch.no_grad():
        for i in range(0, len(texts), 8):
            enc = tok(texts[i:i + 8], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            out += tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return [a.strip() for a in out]


def grounded_scores(rows: list[dict], answers: list[str]) -> dict[str, float]:
    from components.eval.text_metrics import source_span_rate
    from components.grounded import cited_numbers, longest_common_span_words

    return {"span5_rate": source_span_rate(answers, [r["source_text"] for r in rows], 5),
            "mean_span_words": sum(longest_common_span_words(a, r["source_text"]) for a, r in zip(answers, rows))
            / len(rows),
            "cites_gold": sum(r["citation"] in cited_numbers(a) for a, r in zip(answers, rows)) / len(rows),
            "empty": sum(not a for a in answers) / len(rows)}


def answered(rows: list[dict], answers: list[str], path: Path) -> list[str]:
    """``answers``, also written next to the question, gold answer and gold citation (to read them)."""
    path.write_text("".join(json.dumps({"question": r["question"], "answer": a, "gold": r["answer"],
                                        "citation": r["citation"]}) + "\n" for r, a in zip(rows, answers)))
    return answers


def without_gold(rows: list[dict], max_source_chars: int) -> tuple[list[dict], list[str]]:
    """Control prompts: the same question and distractors with the gold source taken out. A span of the
    gold in answers to these comes from the model's memory of the (pretraining) corpus, not from copying."""
    from types import SimpleNamespace

    from components.grounded import grounded_prompt

    kept, prompts = [], []
    for r in rows:
        others = [SimpleNamespace(**s) for s in r["sources"] if s["doc_id"] != r["source_id"]]
        if others:
            kept.append(r)
            prompts.append(grounded_prompt(r["question"], others, max_source_chars))
    return kept, prompts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True, help="train.pretrain artifact (model/ inside)")
    ap.add_argument("--docs", type=Path, required=True, help="data.corpus artifact (docs/*.parquet)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/grpo_grounded_bench"))
    ap.add_argument("--data", default="{}", help="JSON merged into the recipe's instructions config")
    ap.add_argument("--sft", default="{}", help="JSON merged into the recipe's sft config")
    ap.add_argument("--grpo", default="{}", help="JSON merged into the recipe's grpo config")
    ap.add_argument("--skip-grpo", action="store_true")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="greedy answer length for the span check")
    args = ap.parse_args()

    import shutil

    import ray

    from components.rl.config import GRPOConfig
    from components.rl.steps import run_grpo
    from components.sft.config import SFTConfig, SFTDatasetConfig
    from components.sft.dataset import read_jsonl
    from components.sft.steps import GROUNDED_EVAL_FILE, run_dataset, run_lora
    from flows.engine.context import StepContext

    shutil.rmtree(args.out, ignore_errors=True)
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}})
    wall: dict[str, float] = {}

    def step(name: str, fn, inputs: dict, config):
        out = args.out / name
        out.mkdir(parents=True)
        t0 = time.perf_counter()
        res = fn(StepContext.for_test(out, inputs), config)
        wall[name] = time.perf_counter() - t0
        print(f"[{name}] {wall[name]:.1f}s {json.dumps(res)}", flush=True)
        return out, res

    data_cfg = SFTDatasetConfig(**{**recipe_config("instructions"), **json.loads(args.data)})
    sft_cfg = SFTConfig(**{**recipe_config("sft"), **json.loads(args.sft)})
    grpo_cfg = GRPOConfig(**{**recipe_config("grpo"), **json.loads(args.grpo)})
    data, _ = step("instructions", run_dataset, {"docs": args.docs}, data_cfg)
    rows = read_jsonl(data / GROUNDED_EVAL_FILE)
    prompts = [r["prompt"] for r in rows]

    t0 = time.perf_counter()
    base = grounded_scores(rows, greedy_answers(args.model, None, prompts, args.max_new_tokens))
    wall["span_check_base"] = time.perf_counter() - t0
    sft_out, sft = step("sft", run_lora, {"model": args.model, "data": data}, sft_cfg)
    adapter = grounded_scores(rows, answered(rows, greedy_answers(args.model, sft_out, prompts, args.max_new_tokens),
                                             args.out / "answers_sft.jsonl"))
    control_rows, control_prompts = without_gold(rows, data_cfg.max_source_chars)
    control = {"base": grounded_scores(control_rows, greedy_answers(args.model, None, control_prompts,
                                                                     args.max_new_tokens)),
               "sft": grounded_scores(control_rows, greedy_answers(args.model, sft_out, control_prompts,
                                                                    args.max_new_tokens))}
    grpo, after = None, None
    if not args.skip_grpo:
        grpo_out, grpo = step("grpo", run_grpo, {"model": args.model, "data": data, "adapter": sft_out}, grpo_cfg)
        after = grounded_scores(rows, answered(rows, greedy_answers(args.model, grpo_out, prompts, args.max_new_tokens),
                                               args.out / "answers_grpo.jsonl"))
        control["grpo"] = grounded_scores(control_rows, greedy_answers(args.model, grpo_out, control_prompts,
                                                                        args.max_new_tokens))

    print(f"\nmodel {args.model}; {len(rows)} held-out grounded prompts; greedy, {args.max_new_tokens} new tokens")
    print(f"sft: {json.dumps(sft_cfg.model_dump(exclude={'lora'}))}")
    print(f"grpo: {json.dumps(grpo_cfg.model_dump(exclude={'lora', 'rewards'}))}\n")
    print("| metric | base (no adapter) | SFT adapter | GRPO adapter |\n|---|---|---|---|")
    for key in ("span5_rate", "mean_span_words", "cites_gold", "empty"):
        print(f"| {key} | {base[key]:.3f} | {adapter[key]:.3f} | {after[key] if after else float('nan'):.3f} |")
    print(f"| span5_rate, gold taken out (memory, not copying; {len(control_rows)} prompts) | "
          f"{control['base']['span5_rate']:.3f} | {control['sft']['span5_rate']:.3f} | "
          f"{control['grpo']['span5_rate'] if 'grpo' in control else float('nan'):.3f} |")
    print(f"| cites_gold of always citing [1] (chance baseline) | "
          f"{sum(r['citation'] == 1 for r in rows) / len(rows):.3f} | | |")
    print(f"| held-out response loss | {sft['eval_response_loss_before']:.3f} | {sft['eval_response_loss']:.3f} | |")
    if grpo:
        print(f"\n| GRPO | reward first k | reward last k | gain | 95% CI | k |\n|---|---|---|---|---|---|\n"
              f"| {grpo_cfg.num_steps} steps | {grpo['reward_mean_first']:.3f} | {grpo['reward_mean_last']:.3f} | "
              f"{grpo['reward_gain']:+.3f} | [{grpo['reward_gain_ci_low']:+.3f}, {grpo['reward_gain_ci_high']:+.3f}] | "
              f"{grpo['num_effect_steps']} |")
    print("\n| step | wall s |\n|---|---|")
    for k, v in wall.items():
        print(f"| {k} | {v:.1f} |")
    ray.shutdown()


if __name__ == "__main__":
    main()
