"""Language identification with py3langid (its model ships inside the wheel; no download).

Keeps documents whose most probable language is in ``languages`` with probability at least
``min_score`` (FineWeb uses 0.65 with fastText's lid.176; py3langid's normalised probabilities
are on the same 0..1 scale). Only the first ``max_chars`` characters are classified: the
language of a document is settled long before its end, and classification is linear in length.
"""
from __future__ import annotations

from functools import cache

from components.data.filters.base import KEEP, Verdict, drop


@cache
def _identifier():
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ImportError("install py3langid to use the language-id filter (pip install py3langid)") from e
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def classify(text: str) -> tuple[str, float]:
    lang, prob = _identifier().classify(text)
    return str(lang), float(prob)


class LanguageId:
    name = "langid"

    def __init__(self, languages: tuple[str, ...] = ("en",), min_score: float = 0.65, max_chars: int = 4000):
        self.languages, self.min_score, self.max_chars = frozenset(languages), min_score, max_chars

    def apply(self, text: str) -> Verdict:
        lang, prob = classify(text[: self.max_chars])
        if lang not in self.languages:
            return drop(self.name, f"not_{'_'.join(sorted(self.languages))}")
        if prob < self.min_score:
            return drop(self.name, "low_score")
        return KEEP
