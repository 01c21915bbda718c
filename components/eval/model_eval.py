"""Model-side offline metrics: perplexity on held-out token blocks and greedy answers to
eval questions, with the HF model (plus an optional PEFT adapter) on the device that
``components.train.device`` picks. Tiny eval sets on CPU: HF is faster to start than vLLM.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def load_model(model_dir: Path, adapter_dir: Path | None):
    """The HF model at ``model_dir`` (with the PEFT adapter at ``adapter_dir``), its tokenizer and device.

    The adapter's own tokenizer wins when it carries one (chat templates come with SFT)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from components.train.device import train_device

    device = train_device()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tok_dir = model_dir
    if adapter_dir is not None:
        from peft import PeftModel

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
    from components.train.data import TokenBlocks

    blocks = TokenBlocks(tokens_artifact, "val")
    if len(blocks) == 0:
        raise ValueError(f"{tokens_artifact}/manifest.json lists no validation blocks: pack with a val split")
    return blocks.take(np.arange(min(len(blocks), max_blocks)))


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
