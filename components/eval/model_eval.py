"""Model-side offline metrics: perplexity on held-out token blocks and greedy answers to
eval questions, with the HF model (plus an optional PEFT adapter) on the device that
``components.train.device`` picks. Tiny eval sets on CPU: HF is faster to start than vLLM.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


def resolve_model_dir(artifact: Path) -> Path:
    for cand in (artifact / "merged", artifact / "model", artifact):
        if (cand / "config.json").exists():
            return cand
    raise FileNotFoundError(f"no HF model (config.json) in {artifact} or its model/ folder: "
                            "wire eval.offline's `model` input to a train.pretrain / sft.lora step")


def resolve_adapter_dir(artifact: Path) -> Path:
    for cand in (artifact / "adapter", artifact):
        if (cand / "adapter_config.json").exists():
            return cand
    raise FileNotFoundError(f"no PEFT adapter (adapter_config.json) in {artifact} or its adapter/ folder")


def load_model(model_artifact: Path, adapter_artifact: Path | None):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from components.train.device import train_device

    model_dir = resolve_model_dir(model_artifact)
    device = train_device()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tok_dir = model_dir
    if adapter_artifact is not None:
        from peft import PeftModel

        adapter_dir = resolve_adapter_dir(adapter_artifact)
        model = PeftModel.from_pretrained(model, adapter_dir)
        if (adapter_dir / "tokenizer_config.json").exists():
            tok_dir = adapter_dir
    tok = AutoTokenizer.from_pretrained(tok_dir)
    tok.padding_side = "left"  # decoder-only batched generation
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model.to(device).eval(), tok, device


def val_blocks(tokens_artifact: Path, max_blocks: int) -> np.ndarray:
    """The first ``max_blocks`` validation blocks of a tokenize.pack artifact."""
    manifest = json.loads((tokens_artifact / "manifest.json").read_text())
    seq_len, dtype = int(manifest["seq_len"]), np.dtype(manifest["dtype"])
    blocks = []
    for rel in manifest["val"]:
        arr = np.memmap(tokens_artifact / rel, dtype=dtype, mode="r").reshape(-1, seq_len)
        blocks.append(np.asarray(arr[: max_blocks - sum(len(b) for b in blocks)]))
        if sum(len(b) for b in blocks) >= max_blocks:
            break
    if not blocks or sum(len(b) for b in blocks) == 0:
        raise ValueError(f"{tokens_artifact}/manifest.json lists no validation blocks: pack with a val split")
    return np.concatenate(blocks).astype(np.int64)


def perplexity(model, blocks: np.ndarray, device, batch_size: int) -> dict[str, float]:
    """Token-weighted mean NLL over next-token predictions in each block → perplexity."""
    import torch

    total_nll, total_tokens = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(blocks), batch_size):
            ids = torch.from_numpy(blocks[i:i + batch_size]).to(device)
            logits = model(input_ids=ids).logits[:, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1),
                                                    reduction="sum")
            total_nll += float(nll)
            total_tokens += ids[:, 1:].numel()
    loss = total_nll / total_tokens
    return {"perplexity": math.exp(loss), "val_loss": loss, "ppl_tokens": float(total_tokens)}


def prompt_budget(model, max_new_tokens: int) -> int | None:
    """Prompt tokens that fit beside ``max_new_tokens`` in the model's positions (None: no stated limit)."""
    limit = getattr(model.config, "max_position_embeddings", None)
    return max(limit - max_new_tokens, 16) if limit else None


def generate_answers(model, tok, device, questions: list[str], system_prompt: str, max_new_tokens: int,
                     batch_size: int, use_chat_template: bool, max_prompt_tokens: int | None = None) -> list[str]:
    """Greedy answers. Prompts longer than ``max_prompt_tokens`` lose their start (the question is last)."""
    import torch

    prompts = []
    for q in questions:
        if use_chat_template and tok.chat_template:
            msgs = [{"role": "system", "content": system_prompt}, {"role": "user", "content": q}]
            prompts.append(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
        else:
            prompts.append(f"{system_prompt}\n\nQuestion: {q}\nAnswer:")
    answers: list[str] = []
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            tok.truncation_side = "left"
            enc = tok(prompts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False,
                      truncation=max_prompt_tokens is not None, max_length=max_prompt_tokens).to(device)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            answers += tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return [a.strip() for a in answers]
