"""FineWeb line-level quality rules (Penedo et al. 2024), thresholds as in DataTrove's FineWebQualityFilter:
fraction of lines ending in terminal punctuation, fraction of short lines, characters in
duplicated lines, and newlines per word (list-like pages)."""
from __future__ import annotations

from components.data.filters.base import KEEP, Verdict, drop, split_words
from components.data.filters.gopher_repetition import find_duplicates

# Sentence-final marks (DataTrove's TERMINAL_PUNCTUATION for the scripts we expect, abridged).
TERMINAL_PUNCTUATION = (".", "!", "?", "。", "！", "？", "．", "‼", "‽", "⁇", "⁈", "⁉", "।", "॥", "؟", "۔", "։", "።")


class FineWebQuality:
    name = "fineweb"

    def __init__(self, line_punct_thr: float = 0.12, line_punct_exclude_zero: bool = False,
                 short_line_thr: float = 0.67, short_line_length: int = 30,
                 char_duplicates_ratio: float = 0.01, new_line_ratio: float = 0.3):
        self.line_punct_thr, self.line_punct_exclude_zero = line_punct_thr, line_punct_exclude_zero
        self.short_line_thr, self.short_line_length = short_line_thr, short_line_length
        self.char_duplicates_ratio, self.new_line_ratio = char_duplicates_ratio, new_line_ratio

    def apply(self, text: str) -> Verdict:
        lines = [ln for ln in text.split("\n") if ln.strip()]
        if not lines:
            return drop(self.name, "empty")
        ratio = sum(1 for ln in lines if ln.endswith(TERMINAL_PUNCTUATION)) / len(lines)
        if ratio < self.line_punct_thr and not (ratio == 0 and self.line_punct_exclude_zero):
            return drop(self.name, "line_punct_ratio")
        if sum(1 for ln in lines if len(ln) <= self.short_line_length) / len(lines) > self.short_line_thr:
            return drop(self.name, "short_line_ratio")
        if find_duplicates(lines)[1] / max(1, len(text) - text.count("\n")) > self.char_duplicates_ratio:
            return drop(self.name, "char_dup_ratio")
        if text.count("\n") / max(1, len(split_words(text))) > self.new_line_ratio:
            return drop(self.name, "list_ratio")
        return KEEP
