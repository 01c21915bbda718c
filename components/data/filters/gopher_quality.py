"""Gopher quality rules (Rae et al. 2021, appendix A1), thresholds as in DataTrove's GopherQualityFilter."""
from __future__ import annotations

from components.data.filters.base import KEEP, PUNCTUATION, Verdict, drop, split_words

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")


class GopherQuality:
    name = "gopher_quality"

    def __init__(self, min_doc_words: int | None = 50, max_doc_words: int | None = 100_000,
                 min_avg_word_length: float | None = 3, max_avg_word_length: float | None = 10,
                 max_symbol_word_ratio: float | None = 0.1, max_bullet_lines_ratio: float | None = 0.9,
                 max_ellipsis_lines_ratio: float | None = 0.3, min_alpha_words_ratio: float | None = 0.8,
                 min_stop_words: int | None = 2, stop_words: tuple[str, ...] = STOP_WORDS):
        self.min_doc_words, self.max_doc_words = min_doc_words, max_doc_words
        self.min_avg_word_length, self.max_avg_word_length = min_avg_word_length, max_avg_word_length
        self.max_symbol_word_ratio = max_symbol_word_ratio
        self.max_bullet_lines_ratio, self.max_ellipsis_lines_ratio = max_bullet_lines_ratio, max_ellipsis_lines_ratio
        self.min_alpha_words_ratio, self.min_stop_words = min_alpha_words_ratio, min_stop_words
        self.stop_words = frozenset(stop_words)

    def apply(self, text: str) -> Verdict:
        words = split_words(text)
        # a "word" made only of punctuation does not count towards length rules
        real = [w for w in words if w[0].isalnum() or w[0] == "_" or not PUNCTUATION.issuperset(w)]
        n_real = len(real)
        if self.min_doc_words and n_real < self.min_doc_words:
            return drop(self.name, "short_doc")
        if self.max_doc_words and n_real > self.max_doc_words:
            return drop(self.name, "long_doc")
        avg = sum(map(len, real)) / n_real if n_real else 0.0
        if self.min_avg_word_length and avg < self.min_avg_word_length:
            return drop(self.name, "below_avg_word_length")
        if self.max_avg_word_length and avg > self.max_avg_word_length:
            return drop(self.name, "above_avg_word_length")
        n_words = len(words) or 1
        if self.max_symbol_word_ratio:
            if text.count("#") / n_words > self.max_symbol_word_ratio:
                return drop(self.name, "too_many_hashes")
            if (text.count("...") + text.count("…")) / n_words > self.max_symbol_word_ratio:
                return drop(self.name, "too_many_ellipsis")
        lines = text.splitlines() or [""]
        if self.max_bullet_lines_ratio:
            bullets = sum(1 for ln in lines if ln.lstrip().startswith(("•", "-")))
            if bullets / len(lines) > self.max_bullet_lines_ratio:
                return drop(self.name, "too_many_bullets")
        if self.max_ellipsis_lines_ratio:
            ellipsis = sum(1 for ln in lines if ln.rstrip().endswith(("...", "…")))
            if ellipsis / len(lines) > self.max_ellipsis_lines_ratio:
                return drop(self.name, "too_many_end_ellipsis")
        if self.min_alpha_words_ratio:
            alpha = sum(1 for w in words if any(c.isalpha() for c in w))
            if alpha / n_words < self.min_alpha_words_ratio:
                return drop(self.name, "below_alpha_words_ratio")
        if self.min_stop_words and len(self.stop_words.intersection(words)) < self.min_stop_words:
            return drop(self.name, "not_enough_stop_words")
        return KEEP

