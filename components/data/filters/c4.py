"""C4 rules (Raffel et al. 2020), as in DataTrove's C4QualityFilter.

Line rules remove lines (no terminal punctuation, too few words, a word over 1000 chars,
"javascript", cookie/policy boilerplate); document rules drop the page ("lorem ipsum", a curly
bracket, fewer than 5 sentences after line removal). The rewrite keeps only surviving lines;
with ``remove_lines=False`` the line rules only decide which lines count as sentences, and the
text is left whole (code blocks in technical documents have no terminal punctuation).
``split_paragraph=False`` applies the line rules to sentences instead of lines (DataTrove's
option of the same name), which suits hard-wrapped text such as docstrings.
"""
from __future__ import annotations

import re

from components.data.filters.base import KEEP, Verdict, drop

CITATION_RE = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")
POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
                     "use cookies")
# A sentence ends at terminal punctuation followed by whitespace; a cheap stand-in for punkt.
_SENTENCE_END_RE = re.compile(r"[.!?][\"')\]]*(?:\s|$)")

_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+")


def count_sentences(line: str) -> int:
    return max(1, len(_SENTENCE_END_RE.findall(line)))


class C4Quality:
    name = "c4"

    def __init__(self, filter_no_terminal_punct: bool = True, min_num_sentences: int = 5,
                 min_words_per_line: int = 3, max_word_length: int = 1000, remove_citations: bool = True,
                 filter_lorem_ipsum: bool = True, filter_javascript: bool = True,
                 filter_curly_bracket: bool = True, filter_policy: bool = True, remove_lines: bool = True,
                 split_paragraph: bool = True):
        self.filter_no_terminal_punct, self.min_num_sentences = filter_no_terminal_punct, min_num_sentences
        self.min_words_per_line, self.max_word_length = min_words_per_line, max_word_length
        self.remove_citations, self.filter_lorem_ipsum = remove_citations, filter_lorem_ipsum
        self.filter_javascript, self.filter_curly_bracket = filter_javascript, filter_curly_bracket
        self.filter_policy, self.remove_lines = filter_policy, remove_lines
        self.split_paragraph = split_paragraph

    def apply(self, text: str) -> Verdict:
        kept, num_sentences, removed = [], 0, 0
        units = text.splitlines() if self.split_paragraph else _SENTENCE_SPLIT_RE.split(text)
        for line in units:
            line = line.strip()
            if not line:
                continue
            words = line.split()
            if self.max_word_length > 0 and any(len(w) > self.max_word_length for w in words):
                removed += 1
                continue
            if self.remove_citations:
                line = CITATION_RE.sub("", line)
            if self.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith("...")):
                removed += 1
                continue
            if len(words) < self.min_words_per_line:
                removed += 1
                continue
            low = line.lower()
            if self.filter_lorem_ipsum and "lorem ipsum" in low:
                return drop(self.name, "lorem_ipsum")
            if self.filter_javascript and "javascript" in low:
                removed += 1
                continue
            if self.filter_curly_bracket and "{" in line:
                return drop(self.name, "curly_bracket")
            if self.filter_policy and any(p in low for p in POLICY_SUBSTRINGS):
                removed += 1
                continue
            num_sentences += count_sentences(line) if self.split_paragraph else 1
            kept.append(line)
        if num_sentences < self.min_num_sentences:
            return drop(self.name, "too_few_sentences")
        if not self.remove_lines:
            return KEEP
        new = ("\n" if self.split_paragraph else " ").join(kept)
        return KEEP if new == text else Verdict(True, text=new, counts={"c4_lines_removed": removed})
