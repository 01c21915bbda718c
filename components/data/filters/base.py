"""The filter protocol and the verdict it returns."""
from __future__ import annotations

import re
from typing import NamedTuple, Protocol

KEEP: Verdict


class Verdict(NamedTuple):
    keep: bool
    reason: str = ""            # "<filter>:<rule>" when dropped; empty when kept
    text: str | None = None     # the rewritten text, or None when unchanged
    counts: dict | None = None  # per-rule counters for rewrites (e.g. PII replacements by type)


KEEP = Verdict(True)


class Filter(Protocol):
    name: str

    def apply(self, text: str) -> Verdict: ...


# Words for the quality heuristics: runs of word characters (joined by . ' ’ - inside a word, so
# "e.g", "os.path" and "don't" are one word) or runs of punctuation. DataTrove splits with spaCy;
# this regex agrees on prose and is ~20x faster (the difference is measured in the benchmark).
_WORD_RE = re.compile(r"\w+(?:[.'’-]\w+)*|[^\w\s]+")


# ASCII punctuation plus the common typographic marks (DataTrove's PUNCTUATION, abridged).
PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~…—–“”‘’«»„、。，！？：；（）")


def split_words(text: str) -> list[str]:
    return _WORD_RE.findall(text)


def drop(filter_name: str, rule: str) -> Verdict:
    return Verdict(False, f"{filter_name}:{rule}")
