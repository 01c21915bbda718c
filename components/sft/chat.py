"""Chat sequences -> token ids with a response-only label mask.

The tokenizer's chat template marks each assistant turn with ``{% generation %}``; the
tokenizer then returns ``assistant_masks`` and only those positions keep their labels.
Everything else (system, user, role tags) gets -100 and adds nothing to the loss.
"""
from __future__ import annotations

import torch

IGNORE = -100


def encode_chat(tokenizer, messages: list[dict], max_len: int) -> dict[str, list[int]]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
    if not any(mask) and any(m["role"] == "assistant" for m in messages):
        # Most published templates (Qwen, Mistral, Llama 3) have no {% generation %} markers: find each
        # assistant turn as the tokens its message adds after the generation prompt, as TRL's
        # prompt/completion split does.
        ids, mask = _mask_by_prefix(tokenizer, messages)
    ids, mask = ids[:max_len], mask[:max_len]
    return {"input_ids": ids, "labels": [t if m else IGNORE for t, m in zip(ids, mask)]}


def _mask_by_prefix(tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    def render(turns: list[dict], generation_prompt: bool = False) -> list[int]:
        return list(tokenizer.apply_chat_template(turns, tokenize=True, return_dict=True,
                                                  add_generation_prompt=generation_prompt)["input_ids"])

    ids = render(messages)
    mask = [0] * len(ids)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt, upto = render(messages[:i], generation_prompt=True), render(messages[:i + 1])
        if ids[:len(prompt)] != prompt or ids[:len(upto)] != upto or len(upto) <= len(prompt):
            raise ValueError("the tokenizer's chat template neither marks assistant turns with "
                             "{% generation %}...{% endgeneration %} nor renders each turn as a prefix of the "
                             "whole chat, so a response-only loss cannot be computed; add the markers, or assign "
                             "llmflow's template (models.import chat_template: llmflow, or "
                             "components.tokenize.bpe.CHAT_TEMPLATE)")
        mask[len(prompt):len(upto)] = [1] * (len(upto) - len(prompt))
    return ids, mask


def prompt_text(tokenizer, prompt: str, system: str | None = None) -> str:
    """The string a generator continues: the user turn plus the assistant tag."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def collate(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad ids with pad_id and labels with -100; attention_mask marks real tokens."""
    n = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), n), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), n), IGNORE, dtype=torch.long)
    attn = torch.zeros((len(examples), n), dtype=torch.long)
    for i, e in enumerate(examples):
        k = len(e["input_ids"])
        ids[i, :k] = torch.tensor(e["input_ids"])
        labels[i, :k] = torch.tensor(e["labels"])
        attn[i, :k] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": attn}


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """log p(token_t | tokens_<t) for t >= 1, shape (B, T-1)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()
    return torch.log_softmax(logits, -1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)


def response_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over response positions only."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(),
                                             labels.reshape(-1), ignore_index=IGNORE)
