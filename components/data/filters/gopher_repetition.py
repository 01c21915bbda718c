"""Gopher repetition rules (Rae et al. 2021, table A1), thresholds as in DataTrove's GopherRepetitionFilter:
duplicate line / paragraph fractions (by count and by characters), top n-gram character fraction
for n = 2..4 and duplicated n-gram character fraction for n = 5..10."""
from __future__ import annotations

import re
from collections import Counter

from components.data.filters.base import KEEP, Verdict, drop, split_words

_PARA_RE = re.compile(r"\n{2,}")
_LINE_RE = re.compile(r"\n+")


def find_duplicates(items: list[str]) -> tuple[int, int]:
    """(number of repeated items, characters in them), counting every occurrence after the first."""
    seen: set[str] = set()
    n_dup = chars_dup = 0
    for x in items:
        if x in seen:
            n_dup += 1
            chars_dup += len(x)
        else:
            seen.add(x)
    return n_dup, chars_dup


def top_ngram_chars(words: list[str], n: int) -> int:
    grams = Counter(zip(*(words[i:] for i in range(n))))
    if not grams:
        return 0
    gram, count = grams.most_common(1)[0]
    if count < 2:
        # Unlike DataTrove, an n-gram seen once is not "repetition": without this, any document
        # under ~20 words fails top_2_gram on its first n-gram alone.
        return 0
    return (sum(map(len, gram)) + n - 1) * count  # characters of the space-joined n-gram, times its count


def duplicated_ngram_chars(words: list[str], n: int) -> int:
    """Characters covered by n-grams seen before, skipping past each repeat (Gopher's definition)."""
    seen: set[tuple[str, ...]] = set()
    idx, chars = 0, 0
    while idx < len(words) - n + 1:
        gram = tuple(words[idx: idx + n])
        if gram in seen:
            chars += sum(map(len, gram))
            idx += n
        else:
            seen.add(gram)
            idx += 1
    return chars


class GopherRepetition:
    name = "gopher_repetition"

    def __init__(self, dup_line_frac: float | None = 0.3, dup_para_frac: float | None = 0.3,
                 dup_line_char_frac: float | None = 0.2, dup_para_char_frac: float | None = 0.2,
                 top_n_grams: tuple[tuple[int, float], ...] = ((2, 0.2), (3, 0.18), (4, 0.16)),
                 dup_n_grams: tuple[tuple[int, float], ...] = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12),
                                                                (9, 0.11), (10, 0.10))):
        self.dup_line_frac, self.dup_para_frac = dup_line_frac, dup_para_frac
        self.dup_line_char_frac, self.dup_para_char_frac = dup_line_char_frac, dup_para_char_frac
        self.top_n_grams, self.dup_n_grams = tuple(top_n_grams), tuple(dup_n_grams)

    def apply(self, text: str) -> Verdict:
        if not text.strip():
            return drop(self.name, "empty")
        paragraphs = _PARA_RE.split(text.strip())
        n_dup, chars_dup = find_duplicates(paragraphs)
        if self.dup_para_frac and n_dup / len(paragraphs) > self.dup_para_frac:
            return drop(self.name, "dup_para_frac")
        if self.dup_para_char_frac and chars_dup / len(text) > self.dup_para_char_frac:
            return drop(self.name, "dup_para_char_frac")
        lines = _LINE_RE.split(text)
        n_dup, chars_dup = find_duplicates(lines)
        if self.dup_line_frac and n_dup / len(lines) > self.dup_line_frac:
            return drop(self.name, "dup_line_frac")
        if self.dup_line_char_frac and chars_dup / len(text) > self.dup_line_char_frac:
            return drop(self.name, "dup_line_char_frac")
        words = split_words(text)
        for n, frac in self.top_n_grams:
            if top_ngram_chars(words, n) / len(text) > frac:
                return drop(self.name, f"top_{n}_gram")
        for n, frac in self.dup_n_grams:
            if duplicated_ngram_chars(words, n) / len(text) > frac:
                return drop(self.name, f"duplicated_{n}_grams")
        return KEEP
