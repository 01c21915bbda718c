"""Grounded instruction data: the RAG router's own prompt (numbered sources + question) → ``[n]``
and an answer quoted from that (gold) source.

For each question of ``dataset.doc_qa`` the gold passage is the opening of its document through
the paragraph the answer comes from (raw text, line breaks kept, about one index chunk long: what
retrieval returns for it), placed among 1..N passages of other documents in shuffled positions.
The prompt is ``components.grounded.grounded_prompt``, the function the router calls, so the
training and serving formats cannot drift. The router's context budget drops or trims its
lowest-ranked sources; here the distractors are trimmed the same way (word boundary + " …") to
``max_context_chars`` and the gold passage never is: the answer is always in the prompt, and a
record whose answer would not be is skipped. Deterministic given the rng.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from components.grounded import ELLIPSIS, grounded_prompt, longest_common_span_words, words

MIN_DISTRACTOR_CHARS = 80  # a distractor trimmed shorter than this is dropped, as the router drops a source under min_source_tokens


@dataclass(frozen=True)
class DocPassage:
    """A source as grounded_prompt shows it (title + text), and where it came from."""

    doc_id: str
    title: str
    text: str


def raw_blocks(text: str) -> list[str]:
    """The document's blank-line separated blocks, each with its own line breaks kept."""
    blocks, current = [], []
    for line in text.splitlines() + [""]:
        if line.strip():
            current.append(line.rstrip())
        elif current:
            blocks.append("\n".join(current))
            current = []
    return blocks


def _joined(block: str) -> str:
    return " ".join(s.strip() for s in block.splitlines())


def chunk_cut(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` where the index's chunker would cut: the last paragraph
    break in the back half, else line break, else sentence end, else space (no ellipsis: a chunk
    boundary is not marked)."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    for sep in ("\n\n", "\n", ". ", " "):
        at = head.rfind(sep)
        if at > max_chars // 2:
            return head[:at + (1 if sep == ". " else 0)].rstrip()
    return head.rstrip()


def _window(blocks: list[str], first: int, must_end: int, passage_chars: int) -> str:
    """Blocks first..must_end, then more while the text stays within passage_chars."""
    end = must_end + 1
    while end < len(blocks) and len("\n\n".join(blocks[first:end + 1])) <= passage_chars:
        end += 1
    return "\n\n".join(blocks[first:end])


def gold_passage(doc: dict, answer: str, passage_chars: int) -> DocPassage | None:
    """The document's opening through the paragraph that starts with ``answer`` (None if not found).

    Blocks before that paragraph are dropped from the front while the passage is over passage_chars;
    the passage is then chunk-cut to passage_chars unless that would cut the answer.
    """
    blocks = raw_blocks(doc["text"])
    head = answer[:40].rstrip(".:")
    at = next((i for i, b in enumerate(blocks) if _joined(b).startswith(head)), None)
    if at is None:
        return None
    first = 0
    while first < at and len("\n\n".join(blocks[first:at + 1])) > passage_chars:
        first += 1
    text = _window(blocks, first, at, passage_chars)
    cut = chunk_cut(text, passage_chars)
    if longest_common_span_words(answer, cut) >= len(words(answer)):
        text = cut
    return DocPassage(doc["id"], doc.get("title") or doc["id"], text)


def random_passage(doc: dict, rng: random.Random, passage_chars: int) -> DocPassage | None:
    """A chunk-sized passage starting at a random block of ``doc`` (a source retrieved for another question)."""
    blocks = raw_blocks(doc["text"])
    if not blocks:
        return None
    first = rng.randrange(len(blocks))
    text = chunk_cut(_window(blocks, first, first, passage_chars), passage_chars)
    return DocPassage(doc["id"], doc.get("title") or doc["id"], text)


def trim(passage: DocPassage, max_chars: int) -> DocPassage:
    """The passage cut to at most ``max_chars`` (ellipsis included), at a word boundary when one is near."""
    if len(passage.text) <= max_chars:
        return passage
    n = max_chars - len(ELLIPSIS)
    cut = passage.text[:n]
    space = cut.rfind(" ")
    if space > n // 2:
        cut = cut[:space]
    return DocPassage(passage.doc_id, passage.title, cut.rstrip() + ELLIPSIS)


def fit_context(sources: list[DocPassage], gold: DocPassage, max_context_chars: int) -> list[DocPassage]:
    """Keep the gold whole; trim or drop distractors, in prompt order, to the remaining character budget."""
    left = max_context_chars - len(gold.text)
    out = []
    for s in sources:
        if s is gold:
            out.append(s)
        elif len(s.text) <= left:
            out.append(s)
            left -= len(s.text)
        elif left >= MIN_DISTRACTOR_CHARS:
            out.append(trim(s, left))
            left = 0
    return out


def cited_answer(answer: str, citation: int) -> str:
    """The assistant turn: the citation first, then the answer quoted from that source.

    First, not last: the model commits to a source before it writes (and can attend to that block
    while it copies), and a sampled completion cut at max_new_tokens still carries its citation. With
    the citation last, GRPO rollouts on a small model lengthened to the token cap and lost it
    (measured: citation reward 0.08 -> 0.0 over 30 steps).
    """
    return f"[{citation}] {answer}"


def _shown(gold: DocPassage, max_source_chars: int) -> str:
    """The gold's text as grounded_prompt shows it (before its ellipsis, if cut)."""
    return gold.text[:max_source_chars]


def answer_visible(answer: str, gold: DocPassage, max_source_chars: int) -> bool:
    """Every word of the answer appears, in order and contiguous, in what the prompt shows of the gold."""
    return longest_common_span_words(answer, _shown(gold, max_source_chars)) >= len(words(answer))


def grounded_example(row: dict, gold: DocPassage, pool: Sequence[dict], rng: random.Random, *, max_distractors: int,
                     passage_chars: int, max_source_chars: int, max_context_chars: int) -> dict:
    """One grounded record for a ``doc_qa`` row whose answer is visible in ``gold`` (``answer_visible``).

    Keys: question, prompt (the user turn), answer (plain), citation (the gold's number),
    response (the assistant turn, ``cited_answer``), source_id, source_text (the gold as shown),
    sources (doc_id, title, text of each source in prompt order).
    """
    others = [d for d in pool if d["id"] != gold.doc_id]
    k = rng.randint(min(1, max_distractors), max_distractors) if others else 0
    distractors = [p for d in rng.sample(others, min(k, len(others)))
                   if (p := random_passage(d, rng, passage_chars)) is not None]
    sources = [gold, *distractors]
    rng.shuffle(sources)
    sources = fit_context(sources, gold, max_context_chars)
    citation = sources.index(gold) + 1
    return {"question": row["question"], "prompt": grounded_prompt(row["question"], sources, max_source_chars),
            "answer": row["answer"], "citation": citation, "response": cited_answer(row["answer"], citation),
            "source_id": row["source_id"], "source_text": _shown(gold, max_source_chars),
            "sources": [{"doc_id": p.doc_id, "title": p.title, "text": p.text} for p in sources]}


def grounded_examples(qa: Sequence[dict], docs: Sequence[dict], pool: Sequence[dict], num: int | None,
                      rng: random.Random, **settings) -> list[dict]:
    """``num`` grounded records (None: one per row) cycling over ``qa``; each pass draws fresh distractors
    and positions. Rows whose answer is cut off in the prompt are skipped (training on them would
    teach the model to invent). ``pool``: the documents distractors come from.
    """
    by_id = {d["id"]: d for d in docs}
    usable = []
    for r in qa:
        gold = gold_passage(by_id[r["source_id"]], r["answer"], settings["passage_chars"])
        if gold is not None and answer_visible(r["answer"], gold, settings["max_source_chars"]):
            usable.append((r, gold))
    if not usable:
        return []
    num = len(usable) if num is None else num
    return [grounded_example(*usable[i % len(usable)], pool, rng, **settings) for i in range(num)]
