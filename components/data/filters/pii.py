"""PII scrubbing: emails, IBANs, public IP addresses, phone numbers and card numbers become typed placeholders.

Never drops a document. Precision matters as much as recall on technical text full of
numbers: IPs must parse and be globally routable (127.0.0.1 and 192.168.0.1 in docs are not
personal data), card numbers must pass the Luhn check, IBANs the ISO 13616 mod-97 check (so a
capitalised identifier followed by digits is left alone), phone numbers need phone punctuation.
"""
from __future__ import annotations

import ipaddress
import re

from components.data.filters.base import KEEP, Verdict

PLACEHOLDERS = {"email": "<EMAIL>", "iban": "<IBAN>", "ip": "<IP_ADDRESS>", "phone": "<PHONE>",
                "card": "<CREDIT_CARD>"}

EMAIL_RE = re.compile(r"\b[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b")
IPV4_RE = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.]*\d)")
IPV6_RE = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}(?::|[0-9A-Fa-f]{1,4})(?:[0-9A-Fa-f:]*)(?![\w:])")
# Country code, check digits, then the account in groups of 4 (printed) or unbroken (electronic);
# 15-34 characters in all. The match may run into a following capitalised word: ``_iban_repl``
# keeps the longest prefix that passes mod-97.
IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
# 13-19 digits, optionally grouped by single spaces or dashes (as cards are printed).
CARD_RE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
# North-American (555) 123-4567 / 555-123-4567 / 555.123.4567; international +CC forms with
# groups split by space, dot or dash and an optional "(0)" trunk prefix (+44 20 7946 0958,
# +49 (0)30 1234 5678), or unbroken E.164 (+4930123456789). Country codes never start with 0 and
# the groups need separators, so '+000000120' and '+3.14159265' in format-spec docs are kept;
# E.164 allows 8-15 digits in all (checked in ``_phone_digits_ok``).
PHONE_RE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{3}[.-])\d{3}[ .-]\d{4}(?!\w)"
    r"|(?<![\w+])\+[1-9]\d{0,2}(?:[ .-]?\(\d{1,4}\)[ .-]?|[ .-])\d{1,5}(?:[ .-]\d{1,8}){0,5}(?![\w-])"
    r"|(?<![\w+])\+[1-9]\d{7,14}(?!\w)"
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters become 10..35, mod 97 is 1."""
    iban = candidate.replace(" ", "")
    if not 15 <= len(iban) <= 34:
        return False
    return int("".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])) % 97 == 1


def _phone_digits_ok(candidate: str) -> bool:
    return 8 <= sum(ch.isdigit() for ch in candidate) <= 15


def _is_public_ip(candidate: str) -> bool:
    try:
        return ipaddress.ip_address(candidate).is_global
    except ValueError:
        return False


def _longest_valid_prefix(kind: str, valid, separators: str, counts: dict[str, int]):
    """A ``re.sub`` replacement that scrubs the longest prefix (cut at a separator) passing ``valid``.

    The regexes match greedily and may run into what follows: a capitalised word after a printed
    IBAN ("... 0130 00 ABCD"), a year after a phone number ("+44 20 7946 0958 2024"). Trying
    shorter prefixes keeps that tail and still finds the number before it.
    """
    def repl(m) -> str:
        candidate = m.group(0)
        cuts = [len(candidate)] + [i for i in range(len(candidate) - 1, 0, -1) if candidate[i] in separators]
        for cut in cuts:
            if valid(candidate[:cut]):
                counts[kind] += 1
                return PLACEHOLDERS[kind] + candidate[cut:]
        return candidate
    return repl


class PIIScrubber:
    name = "pii"

    def __init__(self, emails: bool = True, ips: bool = True, phones: bool = True, cards: bool = True,
                 ibans: bool = True):
        self.emails, self.ips, self.phones, self.cards, self.ibans = emails, ips, phones, cards, ibans

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
        # IBANs before cards: an IBAN's digits hold 13-19 digit runs that may pass Luhn.
        if self.ibans:
            text = IBAN_RE.sub(_longest_valid_prefix("iban", iban_valid, " ", counts), text)
        if self.cards:
            text = sub("card", CARD_RE, text, lambda s: luhn_valid(re.sub(r"[ -]", "", s)))
        if self.ips:
            text = sub("ip", IPV4_RE, text, _is_public_ip)
            if "::" in text or text.count(":") >= 3:
                text = sub("ip", IPV6_RE, text, _is_public_ip)
        if self.phones:
            text = PHONE_RE.sub(_longest_valid_prefix("phone", _phone_digits_ok, " .-", counts), text)
        return text, counts

    def apply(self, text: str) -> Verdict:
        new, counts = self.scrub(text)
        if new == text:
            return KEEP
        return Verdict(True, text=new, counts={f"pii_{k}": v for k, v in counts.items() if v})
