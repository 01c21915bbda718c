"""Step functions of the SFT stage: ``sft.dataset`` and ``sft.lora``."""
from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

from components.artifacts import Docs, Model
from components.sft.config import SFTConfig, SFTDatasetConfig
from flows.engine.registry import PII_SCRUBBED, step_kind


@step_kind("sft.dataset", inputs=("docs",), requires_traits=(("docs", PII_SCRUBBED),),
           description="Instruction data from the docs: sft.jsonl (chat), prompts.jsonl (GRPO, checkable "
                       "answers), eval.jsonl.")
def run_dataset(ctx, config: SFTDatasetConfig) -> dict[str, float]:
    from components.data.filters.pii import PIIScrubber
    from components.sft import dataset as ds

    docs = list(Docs.of(ctx).rows())
    qa = list(ds.doc_qa(docs, config.max_answer_sentences, config.max_answer_chars))
    train_qa = [r for r in qa if not ds.is_eval_doc(r["source_id"], config.eval_fraction)]
    eval_qa = [r for r in qa if ds.is_eval_doc(r["source_id"], config.eval_fraction)]
    chats = [{"messages": [{"role": "user", "content": r["question"]}, {"role": "assistant", "content": r["answer"]}]}
             for r in train_qa]
    # A user's own chats are read here, not through data.corpus: scrub them as the corpus is scrubbed.
    scrubber = PIIScrubber()
    for path in config.user_chat_paths:
        chats.extend({"messages": [_scrub_message(m, scrubber) for m in chat["messages"]]}
                     for chat in ds.read_chat_jsonl(path))
    random.Random(config.seed).shuffle(chats)
    prompts = ds.arithmetic_prompts(config.num_arithmetic_prompts, config.max_operand, config.seed) + ds.keyword_prompts(qa)
    out = ctx.output
    metrics = {
        "num_sft_examples": ds.write_jsonl(out / "sft.jsonl", chats),
        "num_prompts": ds.write_jsonl(out / "prompts.jsonl", prompts),
        "num_eval_examples": ds.write_jsonl(out / "eval.jsonl", (
            {"question": r["question"], "answer": r["answer"], "source_id": r["source_id"]} for r in eval_qa)),
        "num_docs": len(docs),
        "num_docs_with_qa": len({r["source_id"] for r in qa}),
    }
    ctx.log_metrics(metrics)
    return metrics


def _eval_chats(data: Path, tmp: Path) -> tuple[Path, str]:
    """eval.jsonl as chat records, and which split it came from (tagged on the run)."""
    from components.sft.dataset import read_jsonl, write_jsonl

    rows, split = read_jsonl(data / "eval.jsonl"), "eval"
    if not rows:  # a tiny corpus may hold out no document: evaluate on the training tail instead, and say so
        rows = [{"question": r["messages"][-2]["content"], "answer": r["messages"][-1]["content"]}
                for r in read_jsonl(data / "sft.jsonl")[-64:] if len(r["messages"]) >= 2]
        split = "train_tail"
    path = tmp / "eval_chat.jsonl"
    write_jsonl(path, ({"messages": [{"role": "user", "content": r["question"]},
                                      {"role": "assistant", "content": r["answer"]}]} for r in rows))
    return path, split


@step_kind("sft.lora", inputs=("model", "data"), num_cpus=0, effects=("response_loss",),
           description="LoRA/QLoRA SFT with response-only loss on Ray Train; writes adapter/ (and merged/).")
def run_lora(ctx, config: SFTConfig) -> dict[str, float]:
    from components.sft.artifacts import data_file
    from components.sft.train_loop import sft_train
    from components.train.device import distributed_backend
    from components.train.fit import fit

    base = Model.of(ctx).dir
    data = ctx.input("data")
    train_path = data_file(data, "sft.jsonl")
    with tempfile.TemporaryDirectory() as tmp:
        eval_path, eval_split = _eval_chats(data, Path(tmp))
        history = fit(sft_train, {"model_dir": str(base), "train_path": str(train_path), "eval_path": str(eval_path),
                                  "settings": config.model_dump()},
                      num_workers=config.num_workers, cpus_per_worker=1.0, name="sft", output=ctx.output,
                      subdir="adapter")
    for rec in history:
        ctx.log_metrics({k: v for k, v in rec.items() if k != "step"}, step=rec["step"])
    ctx.set_tags({"sft.base_model": str(base), "sft.num_workers": config.num_workers,
                  "sft.backend": distributed_backend(), "sft.loss": "response_only", "sft.eval_split": eval_split})
    if config.merge:
        _merge(base, ctx.output / "adapter", ctx.output / "merged")
    first, last = history[0]["eval_response_loss"], history[-1]["eval_response_loss"]
    # Step 0 is measured before any update, with the adapter's zero-initialised B: the base model.
    ctx.report_effect("response_loss", last, first, higher_is_better=False, min_margin=config.min_gain_vs_base,
                      baseline_name="base model")
    summary = {"eval_response_loss": last, "eval_response_loss_before": first,
               "train_response_loss": history[-1]["train_response_loss"], "num_steps": len(history) - 1}
    (ctx.output / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _merge(base: Path, adapter: Path, out: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).merge_and_unload()
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(adapter).save_pretrained(out)


def _scrub_message(message: dict, scrubber) -> dict:
    content = message["content"]
    return {**message, "content": scrubber.scrub(content)[0] if isinstance(content, str) else content}
