"""PII scrubbing: emails, public IP addresses, phone numbers and card numbers become typed placeholders.

Never drops a document. Precision matters as much as recall on technical text full of
numbers: IPs must parse and be globally routable (127.0.0.1 and 192.168.0.1 in docs are not
personal data), card numbers must pass the Luhn check, phone numbers need phone punctuation.
"""
from __future__ import annotations

import ipaddress
import re

from components.data.filters.base import KEEP, Verdict

PLACEHOLDERS = {"email": "<EMAIL>", "ip": "<IP_ADDRESS>", "phone": "<PHONE>", "card": "<CREDIT_CARD>"}

EMAIL_RE = re.compile(r"\b[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b")
IPV4_RE = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.]*\d)")
IPV6_RE = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}(?::|[0-9A-Fa-f]{1,4})(?:[0-9A-Fa-f:]*)(?![\w:])")
# 13-19 digits, optionally grouped by single spaces or dashes (as cards are printed).
CARD_RE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
# North-American (555) 123-4567 / 555-123-4567 / 555.123.4567 and international +CC ... forms.
PHONE_RE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{3}[.-])\d{3}[ .-]\d{4}(?!\w)"
    r"|(?<![\w+])\+\d{1,3}(?:[ .-]\d{1,4}){2,4}\d(?![\w-])"
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_public_ip(candidate: str) -> bool:
    try:
        return ipaddress.ip_address(candidate).is_global
    except ValueError:
        return False


class PIIScrubber:
    name = "pii"

    def __init__(self, emails: bool = True, ips: bool = True, phones: bool = True, cards: bool = True):
        self.emails, self.ips, self.phones, self.cards = emails, ips, phones, cards

    def scrub(self, text: str) -> tuple[str, dict[str, int]]:
        counts = {k: 0 for k in PLACEHOLDERS}

        def sub(kind, pattern, text, accept=lambda m: True):
            def repl(m):
                if not accept(m.group(0)):
                    return m.group(0)
                counts[kind] += 1
                return PLACEHOLDERS[kind]
            return pattern.sub(repl, text)

        # Cheap guards first: most documents have no '@' and few long digit runs.
        if self.emails and "@" in text:
            text = sub("email", EMAIL_RE, text)
        if self.cards:
            text = sub("card", CARD_RE, text, lambda s: luhn_valid(re.sub(r"[ -]", "", s)))
        if self.ips:
            text = sub("ip", IPV4_RE, text, _is_public_ip)
            if "::" in text or text.count(":") >= 3:
                text = sub("ip", IPV6_RE, text, _is_public_ip)
        if self.phones:
            text = sub("phone", PHONE_RE, text)
        return text, counts

    def apply(self, text: str) -> Verdict:
        new, counts = self.scrub(text)
        if new == text:
            return KEEP
        return Verdict(True, text=new, counts={f"pii_{k}": v for k, v in counts.items() if v})
