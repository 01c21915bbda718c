"""LoRA SFT on imported architectures vs llmflow's own Llama preset of the same size: tokens/s and trainable share.

    .venv/bin/python benchmarks/byom_sft.py --repeats 3

The baseline is the `tiny` preset (components.models.presets: depth 4, width 256, 4 heads of 64, FFN 704).
Each imported architecture gets the same shape (Qwen2-MoE: 4 experts of FFN 352, 2 per token, a shared
expert of 352: the same active FFN width), random init, the tiny stdlib-docs BPE (2,048 tokens, embedding
2,112), and goes through models.import. Then ``sft_train`` (the function each sft.lora worker runs, here
as a plain call: one process, no Ray) trains a rank-8 LoRA on the architecture's default targets for
``--steps`` steps of batch 8, sequences up to 128 tokens, the same chats for every model. tokens/s is the
median of the per-step rate after ``--warmup`` steps; runs are interleaved (baseline, then each
architecture, ``--repeats`` times) and the table shows the median and the min–max spread.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHAPE = {"hidden_size": 256, "intermediate_size": 704, "num_hidden_layers": 4, "num_attention_heads": 4,
         "num_key_value_heads": 4, "head_dim": 64, "max_position_embeddings": 512, "tie_word_embeddings": False}
ARCHS = {"qwen2": {}, "mistral": {"sliding_window": None},
         "qwen2_moe": {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 352,
                       "shared_expert_intermediate_size": 352, "decoder_sparse_step": 1},
         "mixtral": {"num_local_experts": 4, "num_experts_per_tok": 2, "intermediate_size": 352}}
CHATML = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end_of_text|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def build(tmp: Path) -> dict[str, Path]:
    """{'llama preset': dir, arch: imported dir}."""
    from pydoc_data.topics import topics

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaForCausalLM

    from components.models.import_config import ImportConfig
    from components.models.presets import preset_config
    from components.models.steps import run_import
    from components.tokenize.bpe import train_bpe_tokenizer
    from flows.engine.context import StepContext

    tok = train_bpe_tokenizer([topics[k] for k in sorted(topics)], vocab_size=2048, out_dir=tmp / "tok")
    vocab = (len(tok) + 64) // 64 * 64
    special = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    dirs = {}
    torch.manual_seed(0)
    preset = preset_config("tiny", vocab, max_seq_len=512)
    for k, v in special.items():
        setattr(preset, k, v)
    assert (preset.hidden_size, preset.intermediate_size, preset.num_attention_heads) == (256, 704, 4)
    LlamaForCausalLM(preset).save_pretrained(tmp / "preset")
    tok.save_pretrained(tmp / "preset")
    dirs["llama (tiny preset)"] = tmp / "preset"
    for arch, extra in ARCHS.items():
        torch.manual_seed(0)
        cfg = AutoConfig.for_model(arch, vocab_size=vocab, **special, **{**SHAPE, **extra})
        AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp / f"src_{arch}")
        tok.chat_template = CHATML
        tok.save_pretrained(tmp / f"src_{arch}")
        run_import(StepContext.for_test(tmp / f"imp_{arch}"), ImportConfig(source=str(tmp / f"src_{arch}")))
        dirs[arch] = tmp / f"imp_{arch}" / "model"
    return dirs


def chats(path: Path, n: int = 256) -> Path:
    from pydoc_data.topics import topics

    rows = [{"messages": [{"role": "user", "content": f"What does the {k} topic say?"},
                          {"role": "assistant", "content": topics[k][:400]}]} for k in sorted(topics)]
    path.write_text("".join(json.dumps(rows[i % len(rows)]) + "\n" for i in range(n)))
    return path


def run(model_dir: Path, data: Path, steps: int, warmup: int) -> dict[str, float]:
    import torch

    from components.sft.config import SFTConfig
    from components.sft.lora import add_lora, load_base
    from components.sft.train_loop import sft_train

    cfg = SFTConfig(num_steps=steps, batch_size=8, max_seq_len=128, num_eval_examples=1, learning_rate=1e-3)
    history = sft_train({"model_dir": str(model_dir), "train_path": str(data), "eval_path": str(data),
                         "settings": cfg.model_dump()})
    model = add_lora(load_base(model_dir), cfg.lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    del model
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return {"tokens_per_s": statistics.median(r["tokens_per_s"] for r in history[1 + warmup:]),
            "trainable": trainable, "total": total - trainable}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    import torch

    print(f"torch threads: {torch.get_num_threads()}; load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dirs, data = build(tmp), chats(tmp / "chats.jsonl")
        results: dict[str, list[dict]] = {name: [] for name in dirs}
        for _ in range(args.repeats):
            for name, model_dir in dirs.items():
                results[name].append(run(model_dir, data, args.steps, args.warmup))
    base = statistics.median(r["tokens_per_s"] for r in results["llama (tiny preset)"])
    print(f"load average after: {os.getloadavg()}")
    print("| model | params (base) | LoRA trainable | trainable share | SFT tokens/s median (min–max) | vs preset |")
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():
        rates = [r["tokens_per_s"] for r in runs]
        r0 = runs[0]
        print(f"| {name} | {r0['total']:,} | {r0['trainable']:,} | {100 * r0['trainable'] / (r0['total'] + r0['trainable']):.2f}% "
              f"| {statistics.median(rates):,.0f} ({min(rates):,.0f}–{max(rates):,.0f}) "
              f"| {statistics.median(rates) / base:.2f}× |")


if __name__ == "__main__":
    main()
