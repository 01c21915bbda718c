"""Cut documents into overlapping windows of embedding-model tokens.

Each window holds at most ``chunk_tokens`` tokens of the embedding model's own tokenizer (so
no chunk is silently truncated by the encoder). Inside a window the cut goes at the strongest
separator found in its back half — paragraph break, then line break, then sentence end, then
any word boundary — the recursive-splitter preference order, done in one pass over the token
offsets. The next window starts ``overlap_tokens`` before the cut, on a word boundary.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from components.rag.config import ChunkingConfig


@dataclass(frozen=True)
class Chunk:
    index: int          # position of the chunk in its document
    text: str
    start_char: int
    end_char: int
    num_tokens: int


@lru_cache(maxsize=2)
def load_tokenizer(model_dir: str):
    """The embedding model's fast tokenizer, without truncation or special tokens."""
    from pathlib import Path

    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def _gap_strength(text: str, prev_end: int, next_start: int) -> int:
    """How good a cut between two tokens is: 3 paragraph, 2 line, 1 sentence, 0 word, -1 inside a word."""
    gap = text[prev_end:next_start]
    if "\n\n" in gap:
        return 3
    if "\n" in gap:
        return 2
    if not gap or not gap.isspace():
        return -1
    return 1 if text[prev_end - 1:prev_end] in {".", "?", "!", ":", ";"} else 0


def chunk_text(text: str, config: ChunkingConfig, tokenizer) -> list[Chunk]:
    offsets = tokenizer.encode(text, add_special_tokens=False).offsets
    n = len(offsets)
    if n == 0:
        return []
    size, overlap = config.chunk_tokens, config.overlap_tokens
    spans: list[tuple[int, int]] = []  # token [start, end)
    start = 0
    while start < n:
        end = min(start + size, n)
        if end < n:
            best, best_strength = end, -2
            for j in range(end, start + max(size // 2, 1), -1):  # latest cut of the strongest kind
                strength = _gap_strength(text, offsets[j - 1][1], offsets[j][0])
                if strength > best_strength:
                    best, best_strength = j, strength
            end = best
        spans.append((start, end))
        if end >= n:
            break
        nxt = max(end - overlap, start + 1)
        while nxt < end and _gap_strength(text, offsets[nxt - 1][1], offsets[nxt][0]) < 0:
            nxt += 1  # do not start a chunk in the middle of a word
        start = nxt
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < config.min_chunk_tokens:
        spans[-2] = (spans[-2][0], spans[-1][1])
        spans.pop()
    chunks = []
    for i, (s, e) in enumerate(spans):
        c0, c1 = offsets[s][0], offsets[e - 1][1]
        chunks.append(Chunk(index=i, text=text[c0:c1], start_char=c0, end_char=c1, num_tokens=e - s))
    return chunks
