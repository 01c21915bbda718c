"""Step functions of the SFT stage: ``sft.dataset`` and ``sft.lora``."""
from __future__ import annotations

import json
import random
from pathlib import Path

from components.artifacts import Docs, Model
from components.models.compat import copy_tokenizer_files
from components.sft.config import SFTConfig, SFTDatasetConfig
from flows.engine.registry import PII_SCRUBBED, step_kind

# Held-out grounded prompts: question, prompt, response, answer, citation, source_id, source_text, sources.
GROUNDED_EVAL_FILE = "eval_grounded.jsonl"


@step_kind("sft.dataset", inputs=("docs",), requires_traits=(("docs", PII_SCRUBBED),),
           description="Instruction data from the docs: sft.jsonl (chat), prompts.jsonl (GRPO, checkable "
                       "answers), eval.jsonl.")
def run_dataset(ctx, config: SFTDatasetConfig) -> dict[str, float]:
    from components.data.filters.pii import PIIScrubber
    from components.sft import dataset as ds
    from components.sft import grounded as gd

    docs = list(Docs.of(ctx).rows())
    qa = list(ds.doc_qa(docs, config.max_answer_sentences, config.max_answer_chars))
    train_qa = [r for r in qa if not ds.is_eval_doc(r["source_id"], config.eval_fraction)]
    eval_qa = [r for r in qa if ds.is_eval_doc(r["source_id"], config.eval_fraction)]
    # Held-out documents never reach training, not even as distractors.
    train_docs = [d for d in docs if not ds.is_eval_doc(d["id"], config.eval_fraction)]
    grounded = {"max_distractors": config.max_distractors, "passage_chars": config.passage_chars,
                "max_source_chars": config.max_source_chars, "max_context_chars": config.max_context_chars}
    chats = [_chat(r["question"], r["answer"]) for r in train_qa]
    num_grounded = round(len(chats) * config.grounded_share / (1 - config.grounded_share))
    grounded_train = (gd.grounded_examples(train_qa, docs, train_docs, num_grounded, random.Random(config.seed + 1),
                                           **grounded) if num_grounded else [])
    chats += [_chat(g["prompt"], g["response"]) for g in grounded_train]
    # A user's own chats are read here, not through data.corpus: scrub them as the corpus is scrubbed.
    scrubber = PIIScrubber()
    for path in config.user_chat_paths:
        chats.extend({"messages": [_scrub_message(m, scrubber) for m in chat["messages"]]}
                     for chat in ds.read_chat_jsonl(path))
    random.Random(config.seed).shuffle(chats)
    prompts: list[dict] = []
    if "grounded" in config.grpo_tasks:
        prompts += [{k: g[k] for k in ("prompt", "answer", "citation", "source_id")} for g in
                    gd.grounded_examples(train_qa, docs, train_docs, None, random.Random(config.seed + 2), **grounded)]
    if "arithmetic" in config.grpo_tasks:
        prompts += ds.arithmetic_prompts(config.num_arithmetic_prompts, config.max_operand, config.seed)
    if "keyword" in config.grpo_tasks:
        prompts += ds.keyword_prompts(qa)
    eval_grounded = gd.grounded_examples(eval_qa, docs, train_docs, None, random.Random(config.seed + 3), **grounded)
    out = ctx.output
    metrics = {
        "num_sft_examples": ds.write_jsonl(out / "sft.jsonl", chats),
        "num_grounded_examples": len(grounded_train),
        "num_prompts": ds.write_jsonl(out / "prompts.jsonl", prompts),
        "num_eval_examples": ds.write_jsonl(out / "eval.jsonl", (
            {"question": r["question"], "answer": r["answer"], "source_id": r["source_id"]} for r in eval_qa)),
        "num_grounded_eval_examples": ds.write_jsonl(out / GROUNDED_EVAL_FILE, eval_grounded),
        "num_docs": len(docs),
        "num_docs_with_qa": len({r["source_id"] for r in qa}),
    }
    ctx.log_metrics(metrics)
    return metrics


def _chat(user: str, assistant: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def _eval_chats(data: Path) -> tuple[list[dict], str]:
    """Held-out chats (plain eval.jsonl and grounded eval, interleaved), and which split they came from.

    Built by the driver and sent to the workers inline: a file of it would lie on the driver's disk only."""
    from components.sft.dataset import read_jsonl

    plain, split = [_chat(r["question"], r["answer"]) for r in read_jsonl(data / "eval.jsonl")], "eval"
    grounded_path = data / GROUNDED_EVAL_FILE
    grounded = [_chat(r["prompt"], r["response"]) for r in read_jsonl(grounded_path)] if grounded_path.exists() else []
    rows = [c for pair in zip(plain, grounded) for c in pair] + plain[len(grounded):] + grounded[len(plain):]
    if not rows:  # a tiny corpus may hold out no document: evaluate on the training tail instead, and say so
        rows = [r for r in read_jsonl(data / "sft.jsonl")[-64:] if len(r["messages"]) >= 2]
        split = "train_tail"
    return rows, split


@step_kind("sft.lora", inputs=("model", "data"), num_cpus=0, effects=("response_loss",),
           description="LoRA/QLoRA SFT with response-only loss on Ray Train; writes adapter/ (and merged/).")
def run_lora(ctx, config: SFTConfig) -> dict[str, float]:
    from components.sft.artifacts import data_file
    from components.sft.train_loop import sft_train
    from components.train.device import distributed_backend
    from components.train.fit import fit, input_ref

    base = Model.of(ctx).dir
    data = ctx.input("data")
    train_path = data_file(data, "sft.jsonl")
    eval_rows, eval_split = _eval_chats(data)
    # The workers may run on nodes that share no disk with this one: inputs as references they open there
    # (components.train.fit.input_ref), the eval chats this step built inline.
    history = fit(sft_train, {"model_dir": input_ref(ctx, "model", base), "train_path": input_ref(ctx, "data", train_path),
                              "eval_rows": eval_rows, "settings": config.model_dump()},
                  num_workers=config.num_workers, cpus_per_worker=1.0, name="sft", output=ctx.output,
                  subdir="adapter", storage_uri=ctx.scratch_uri, set_tags=ctx.set_tags)
    # The base's own tokenizer files, not a re-save through the class transformers picks by model_type
    # (which may add tokens): the adapter is served, and merged, with exactly the base's tokenizer.
    copy_tokenizer_files(base, ctx.output / "adapter")
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
