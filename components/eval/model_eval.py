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


def _prompts(tok, questions: list[str], system_prompt: str, use_chat_template: bool) -> list[str]:
    prompts = []
    for q in questions:
        if use_chat_template and tok.chat_template:
            msgs = [{"role": "system", "content": system_prompt}, {"role": "user", "content": q}]
            prompts.append(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
        else:
            prompts.append(f"{system_prompt}\n\nQuestion: {q}\nAnswer:")
    return prompts


def generate_answers(model, tok, device, questions: list[str], system_prompt: str, max_new_tokens: int,
                     batch_size: int, use_chat_template: bool, max_prompt_tokens: int | None = None) -> list[str]:
    """Greedy answers. Prompts longer than ``max_prompt_tokens`` lose their start (the question is last)."""
    import torch

    prompts = _prompts(tok, questions, system_prompt, use_chat_template)
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


def choose_answers(model, tok, device, questions: list[str], choices: list[list[str]], system_prompt: str,
                   max_new_tokens: int, use_chat_template: bool, max_prompt_tokens: int | None = None) -> list[str]:
    """Greedy answers constrained to one of each question's ``choices`` (the router's quote mode).

    Token by token, the most likely token among those that continue a choice still possible (or
    EOS once a whole choice is written): what vLLM's ``structured_outputs.choice`` grammar does with
    greedy decoding, over the tokenizer's own spelling of each choice. A question without choices
    gets an empty answer; past ``max_new_tokens`` the answer is the prefix written so far.
    """
    import torch

    prompts = _prompts(tok, questions, system_prompt, use_chat_template)
    tok.truncation_side = "left"
    answers = []
    with torch.no_grad():
        for prompt, options in zip(prompts, choices):
            spelled = [tok(c, add_special_tokens=False)["input_ids"] for c in options]
            enc = tok(prompt, return_tensors="pt", add_special_tokens=False,
                      truncation=max_prompt_tokens is not None, max_length=max_prompt_tokens).to(device)
            out = model(**enc, use_cache=True)
            alive, written = list(range(len(spelled))), []
            while alive and len(written) < max_new_tokens:
                pos = len(written)
                nexts = sorted({spelled[i][pos] for i in alive if len(spelled[i]) > pos})
                finished = any(len(spelled[i]) == pos for i in alive)
                allowed = nexts + ([tok.eos_token_id] if finished and tok.eos_token_id is not None else [])
                if not allowed or (finished and tok.eos_token_id is None):
                    break
                logits = out.logits[0, -1, allowed]
                best = allowed[int(torch.argmax(logits))]
                if best == tok.eos_token_id and finished:
                    break
                written.append(best)
                alive = [i for i in alive if len(spelled[i]) > pos and spelled[i][pos] == best]
                out = model(input_ids=torch.tensor([[best]], device=device), past_key_values=out.past_key_values,
                            use_cache=True)
            answers.append(tok.decode(written, skip_special_tokens=True).strip())
    return answers
