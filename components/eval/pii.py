"""PII redaction for traces and feedback, before anything is logged.

Reuses the data stage's scrubber (``components.data.filters.pii``: emails, public IPs,
phone numbers, Luhn-checked cards → ``<EMAIL>``-style placeholders) and adds two kinds
that show up in chat traffic but not in pretraining text: US SSNs and API-key-like secrets.
"""
from __future__ import annotations

import re
from collections import Counter

from components.data.filters.pii import PIIScrubber

_SCRUBBER = PIIScrubber()
_EXTRA: list[tuple[str, re.Pattern, str]] = [
    ("secret", re.compile(r"\b(?:sk|pk|api|key|tok|ghp|xox[bp])[-_][A-Za-z0-9_-]{16,}\b", re.IGNORECASE), "<SECRET>"),
    ("ssn", re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])"), "<SSN>"),
]


def redact(text: str) -> tuple[str, Counter]:
    """Return ``text`` with PII replaced, and how many of each kind were replaced."""
    counts: Counter = Counter()
    for kind, pattern, placeholder in _EXTRA:  # before the phone rule, which would eat an SSN's digits
        text, n = pattern.subn(placeholder, text)
        if n:
            counts[kind] += n
    text, found = _SCRUBBER.scrub(text)
    counts.update({k: v for k, v in found.items() if v})
    return text, counts


def redact_obj(obj, counts: Counter | None = None):
    """Redact every string inside nested dicts/lists (request bodies, chat messages)."""
    counts = Counter() if counts is None else counts
    if isinstance(obj, str):
        out, c = redact(obj)
        counts.update(c)
        return out
    if isinstance(obj, dict):
        return {k: redact_obj(v, counts) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v, counts) for v in obj]
    return obj
