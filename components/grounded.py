"""Grounded answering, shared by every stage that touches it: the numbered-sources prompt the RAG
router sends, and the word-level measures of whether an answer copies and cites its sources.

One definition, imported by the router (``components.rag.routing``), by ``sft.dataset`` (which
trains on prompts in this exact format), by the GRPO rewards and by eval, so the prompt a model
is trained on cannot drift from the prompt it is served. It lives at the top of ``components/``
(the shared base) because sft and rl sit below rag in the stage order.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Protocol

# MLflow ``{{var}}`` syntax; versioned in the prompt registry as "llmflow-rag" (components.rag.prompt).
RAG_TEMPLATE = (
    "Answer the question using only the numbered sources below. Cite the sources you use as [1], [2]. "
    "If the sources do not contain the answer, say that you don't know.\n\n"
    "Sources:\n{{context}}\n\nQuestion: {{question}}"
)
ELLIPSIS = " …"  # marks a source cut short

_WORD = re.compile(r"\w+")
_CITATION = re.compile(r"\[(\d+)\]")


class Passage(Protocol):
    """What a grounded prompt needs of a source (``components.rag.retriever.Source`` is one)."""

    title: str
    text: str


def grounded_prompt(query: str, sources: Sequence[Passage], max_source_chars: int) -> str:
    """The user turn of a grounded request: sources numbered from 1, each cut to ``max_source_chars``."""
    blocks = []
    for n, s in enumerate(sources, 1):
        text = s.text if len(s.text) <= max_source_chars else s.text[:max_source_chars] + ELLIPSIS
        blocks.append(f"[{n}] {s.title}\n{text}")
    return RAG_TEMPLATE.replace("{{context}}", "\n\n".join(blocks)).replace("{{question}}", query)


def words(text: str) -> list[str]:
    """Lower-cased word tokens (runs of letters, digits, underscore); punctuation and layout ignored."""
    return _WORD.findall(text.lower())


def longest_common_span_words(answer: str, source: str) -> int:
    """Length, in words, of the longest run of consecutive words the answer shares with the source.

    Citation markers ("[2]") are not words of the answer. 5+ shared words in a row is a copy, not chance.
    """
    a, s = words(without_citations(answer)), words(source)
    if not a or not s:
        return 0
    m = difflib.SequenceMatcher(None, a, s, autojunk=False).find_longest_match(0, len(a), 0, len(s))
    return m.size


def without_citations(text: str) -> str:
    """The text with its citation markers ("[2]") removed."""
    return _CITATION.sub(" ", text)


def cited_numbers(text: str) -> list[int]:
    """The source numbers an answer cites, in order of first appearance ("see [2] and [1]" -> [2, 1])."""
    out: list[int] = []
    for m in _CITATION.finditer(text):
        n = int(m.group(1))
        if n not in out:
            out.append(n)
    return out


# A sentence ends at . ! ? : followed by space, or at a blank line or a new list item.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?:])\s+|\n\s*\n|\n(?=\s*[-*•]\s)")


def quote_choices(sources: Sequence[Passage], max_source_chars: int, *, min_words: int = 5, max_words: int = 32,
                  max_choices: int = 64) -> list[str]:
    """The answers quote mode allows: ``"[n] <sentence>"`` for each sentence of each source as the grounded
    prompt shows it (cut to ``max_source_chars``, less a word the cut splits), in source order.

    Sentences under ``min_words`` words (headings, fragments) are left out; longer than ``max_words``
    they keep their first ``max_words`` words, so the answer fits a small ``max_tokens``. Whitespace is
    collapsed; the words are the source's own, so every choice copies its source word for word.
    """
    out: list[str] = []
    for n, s in enumerate(sources, 1):
        shown = s.text[:max_source_chars]
        if len(s.text) > max_source_chars:  # the prompt cuts it mid-word: quote whole words only
            shown = shown.rsplit(None, 1)[0] if len(shown.split()) > 1 else ""
        for part in _SENTENCE_BREAK.split(shown):
            tokens = part.split()
            if len(words(part)) < min_words:
                continue
            choice = f"[{n}] " + " ".join(tokens[:max_words])
            if choice not in out:
                out.append(choice)
                if len(out) == max_choices:
                    return out
    return out
