"""Scrubbing at ingestion: Unicode normalisation and PII placeholders on every document data.corpus reads.

data.corpus applies this before anything else sees a document (size rules, report samples,
the written shards), so no artifact of a flow holds a user's raw e-mail addresses, phone
numbers, IBANs or card numbers, whichever step reads the corpus. data.clean keeps its own
PII pass for inputs that come from elsewhere.
"""
from __future__ import annotations

from components.data.config import ScrubConfig
from components.data.filters.pii import PLACEHOLDERS, PIIScrubber
from components.data.filters.unicode_norm import UnicodeNormalizer

# The same rewrite counters data.clean reports, so dashboards read both steps alike.
COUNTERS = ("text_rewritten", *(f"pii_{k}" for k in PLACEHOLDERS))


class DocScrubber:
    """Rewrites a document's text, title and id; counts what it replaced."""

    def __init__(self, config: ScrubConfig):
        self.unicode = UnicodeNormalizer(config.unicode.form) if config.unicode.enabled else None
        p = config.pii
        self.pii = PIIScrubber(**p.model_dump(exclude={"enabled"})) if p.enabled else None
        self.counts = dict.fromkeys(COUNTERS, 0)

    def _normalise(self, text: str) -> str:
        if self.unicode is None:
            return text
        verdict = self.unicode.apply(text)
        # The normaliser drops only texts that are blank once normalised; "" lets the size rule
        # that follows count them as corpus:empty.
        if not verdict.keep:
            return ""
        return verdict.text if verdict.text is not None else text

    def text(self, text: str) -> str:
        """Scrubbed text, not counted: for ids, titles and report samples."""
        text = self._normalise(text)
        return self.pii.scrub(text)[0] if self.pii is not None else text

    def doc(self, doc: dict, position: int) -> dict:
        """The document with every field a reader fills scrubbed; ``position`` keeps rewritten ids unique."""
        text = self._normalise(doc["text"])
        if self.pii is not None:
            text, counts = self.pii.scrub(text)
            for kind, n in counts.items():
                self.counts[f"pii_{kind}"] += n
        self.counts["text_rewritten"] += int(text != doc["text"])
        doc_id = self.text(doc["id"])
        if doc_id != doc["id"]:  # two ids may scrub to the same string; ids must stay unique
            doc_id = f"{doc_id}#{position}"
        return {**doc, "id": doc_id, "text": text, "title": self.text(doc.get("title") or ""),
                "source": self.text(doc.get("source") or "")}
