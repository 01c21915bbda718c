"""Fitting a request into the served model's context: count the prompt exactly as vLLM will, then
drop the lowest-ranked sources and trim the last one that partly fits.

vLLM rejects a chat request whose chat-templated prompt exceeds ``max_model_len``, so a router
that stuffs sources blindly turns everyday questions into 400s. Here the prompt is counted with
the served model's own tokenizer and chat template (what vLLM's chat route does:
``apply_chat_template(messages, add_generation_prompt=True, tokenize=True)``), and the grounded
prompt gets at most ``max_model_len - max_tokens`` tokens. Only a conversation that cannot fit
by itself is an error (``ContextOverflowError``, the router's 400).

Pure functions around a counter (``messages -> prompt tokens``): ``load_chat_token_counter``
builds the real one, tests may pass any callable.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from components.rag.retriever import Source
from components.rag.routing import grounded_messages

CountTokens = Callable[[list[dict]], int]
ELLIPSIS = " …"  # marks a source cut short, as grounded_prompt marks a max_source_chars cut


class ContextOverflowError(ValueError):
    """The request cannot fit whatever the sources: ``param`` names what to shorten."""

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.message, self.param = message, param


def _text_only(messages: list[dict]) -> list[dict]:
    # vLLM flattens OpenAI content parts to their texts joined by newlines before templating;
    # a template given the raw list would render its Python repr and miscount.
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        out.append({**m, "content": content if content is not None else ""})
    return out


def chat_token_counter(tokenizer) -> CountTokens:
    """Prompt tokens of a chat request for this HF tokenizer, as vLLM's chat route counts them."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"the tokenizer {getattr(tokenizer, 'name_or_path', tokenizer)!r} has no chat template, so "
                         "the LLM's /v1/chat/completions cannot template a conversation either: serve a model "
                         "whose tokenizer has one (tokenize.train saves it) or set router.tokenizer to one that does")

    def count(messages: list[dict]) -> int:
        return len(tokenizer.apply_chat_template(_text_only(messages), add_generation_prompt=True, tokenize=True,
                                                 return_dict=False))

    return count


def load_chat_token_counter(tokenizer_dir: str) -> CountTokens:
    from transformers import AutoTokenizer

    return chat_token_counter(AutoTokenizer.from_pretrained(tokenizer_dir))


def request_max_tokens(count: CountTokens, messages: list[dict], *, max_model_len: int,
                       requested: int | None, default: int) -> tuple[int, int]:
    """(prompt tokens of the conversation as sent, max_tokens to generate) — or ContextOverflowError.

    An explicit ``requested`` is honoured or refused; the router's ``default`` shrinks to what the
    question leaves, so a long question without max_tokens still gets an answer.
    """
    question_tokens = count(messages)
    if question_tokens + 1 > max_model_len:
        raise ContextOverflowError(
            f"the conversation alone is {question_tokens} prompt tokens (chat template included) but the model's "
            f"context holds {max_model_len} tokens for prompt and answer together: shorten the question (or drop "
            f"earlier turns) to at most {max_model_len - 1} tokens", "messages")
    room = max_model_len - question_tokens
    if requested is None:
        return question_tokens, min(default, room)
    if requested > room:
        raise ContextOverflowError(
            f"max_tokens={requested} does not fit: the question takes {question_tokens} of the model's "
            f"{max_model_len}-token context, leaving {room}; ask for at most {room} tokens or shorten the question",
            "max_tokens")
    return question_tokens, requested


@dataclass
class FittedPrompt:
    """The grounded messages that fit, the sources in them (the trimmed one shortened), what was cut."""

    messages: list[dict]
    sources: list[Source]
    prompt_tokens: int
    dropped: list[Source] = field(default_factory=list)
    trimmed: list[tuple[Source, Source]] = field(default_factory=list)  # (original, as sent)

    def report(self, max_model_len: int, max_tokens: int) -> dict:
        """The ``rag.budget`` block of a response."""
        return {"max_model_len": max_model_len, "max_tokens": max_tokens, "prompt_tokens": self.prompt_tokens,
                "dropped": [{"id": s.id, "title": s.title} for s in self.dropped],
                "trimmed": [{"id": s.id, "title": s.title, "chars": len(s.text),
                             "chars_sent": len(t.text) - len(ELLIPSIS)} for s, t in self.trimmed]}


def fit_sources(count: CountTokens, messages: list[dict], sources: Sequence[Source], *, max_source_chars: int,
                max_model_len: int, max_tokens: int, min_source_tokens: int) -> FittedPrompt:
    """Keep the best-ranked sources whose grounded prompt + ``max_tokens`` fits ``max_model_len``.

    Sources are taken in rank order until the next one no longer fits whole; that one is then
    trimmed to the room left (at a word boundary) if at least ``min_source_tokens`` of it fit —
    the top source is kept whenever any of it fits. Everything after it is dropped. The result's
    ``sources`` is empty when not even part of the top source fits beside the question.
    """
    limit = max_model_len - max_tokens

    def build(srcs: list[Source]) -> list[dict]:
        return grounded_messages(messages, srcs, max_source_chars)

    kept: list[Source] = []
    for s in sources:
        if count(build(kept + [s])) > limit:
            break
        kept.append(s)
    rest = list(sources[len(kept):])
    trimmed = []
    if rest:
        part = _trim_to_fit(count, build, kept, rest[0], max_source_chars, limit)
        if part is not None and (not kept or
                                 count(build(kept + [part])) - count(build(kept)) >= min_source_tokens):
            kept.append(part)
            trimmed.append((rest.pop(0), part))
    final = build(kept) if kept else list(messages)
    prompt_tokens = count(final)
    assert not kept or prompt_tokens <= limit, (prompt_tokens, limit)  # each candidate was counted before keeping
    return FittedPrompt(final, kept, prompt_tokens, rest, trimmed)


def _trim_to_fit(count: CountTokens, build, kept: list[Source], source: Source, max_source_chars: int,
                 limit: int) -> Source | None:
    """The longest prefix of ``source`` (cut at a word if one is near) that still fits, or None."""
    def cut(n: int) -> Source:
        return dataclasses.replace(source, text=source.text[:n].rstrip() + ELLIPSIS)

    def fits(n: int) -> bool:
        return count(build(kept + [cut(n)])) <= limit

    # Below max_source_chars, so grounded_prompt sends the cut as is (no second cut and marker).
    lo, hi = 0, min(len(source.text) - 1, max_source_chars - len(ELLIPSIS))
    while lo < hi:  # largest fitting n; the count grows with the prefix up to BPE merge noise
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    if lo == 0:
        return None
    word_end = source.text.rfind(" ", 0, lo + 1)
    if word_end > lo // 2 and fits(word_end):
        lo = word_end
    return cut(lo)
