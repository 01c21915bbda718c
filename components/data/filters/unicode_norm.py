"""Unicode normalisation: NFC (or NFKC), control characters removed, line endings unified.

Drops nothing except documents that are empty once normalised; the rewrite makes the
downstream rules (and exact dedup) see one spelling of each character.
"""
from __future__ import annotations

import re
import unicodedata

from components.data.filters.base import KEEP, Verdict, drop

# C0/C1 controls except tab and newline; they break tokenizers and are never prose.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class UnicodeNormalizer:
    name = "unicode"

    def __init__(self, form: str = "NFC"):
        if form not in ("NFC", "NFKC"):
            raise ValueError(f"unicode form {form!r} is not supported; use 'NFC' or 'NFKC'")
        self.form = form

    def apply(self, text: str) -> Verdict:
        new = text.replace("\r\n", "\n").replace("\r", "\n")
        new = _CONTROL_RE.sub("", new)
        if not new.isascii():
            new = unicodedata.normalize(self.form, new)
        if not new.strip():
            return drop(self.name, "empty")
        return KEEP if new == text else Verdict(True, text=new)
