"""PII redaction for traces: emails, phone numbers, IPv4 addresses, payment cards (Luhn-checked),
US SSNs and API-key-like secrets are replaced by ``[REDACTED_<KIND>]`` before anything is logged.

Kept small and local to the online loop (the data stage's scrubber was not available when
this was written); ``redact`` returns per-kind counts so the loop can report what it removed.
"""
from __future__ import annotations

import re
from collections import Counter

_PATTERNS: list[tuple[str, re.Pattern]] = [
    ("EMAIL", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")),
    ("SECRET", re.compile(r"\b(?:sk|pk|api|key|tok)[-_][A-Za-z0-9_-]{16,}\b", re.IGNORECASE)),
    ("CARD", re.compile(r"\b(?:\d[ -]?){12,18}\d\b")),
    ("SSN", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    ("IP", re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")),
    ("PHONE", re.compile(r"(?<!\w)(?:\+?\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\d{2,4})[ .-]?\d{3,4}[ .-]?\d{3,4}(?!\w)")),
]


def _luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


def redact(text: str) -> tuple[str, Counter]:
    """Return ``text`` with PII replaced, and how many of each kind were replaced."""
    counts: Counter = Counter()

    for kind, pattern in _PATTERNS:
        def sub(m: re.Match, kind=kind) -> str:
            if kind == "CARD":
                digits = re.sub(r"\D", "", m.group(0))
                if not _luhn_ok(digits):
                    return m.group(0)
            counts[kind] += 1
            return f"[REDACTED_{kind}]"
        text = pattern.sub(sub, text)
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
