"""PII scrubbing catches each type and leaves ordinary numbers alone."""
from __future__ import annotations

import pytest

from components.data.filters.pii import PIIScrubber, luhn_valid


@pytest.mark.parametrize("text,kind,placeholder", [
    ("Contact jane.doe+py@mail.example.co.uk today.", "email", "<EMAIL>"),
    ("The server at 8.8.4.4 answered.", "ip", "<IP_ADDRESS>"),
    ("Reach it on 2001:4860:4860::8888 now.", "ip", "<IP_ADDRESS>"),
    ("Call (415) 555-2671 after six.", "phone", "<PHONE>"),
    ("Call 415-555-2671 after six.", "phone", "<PHONE>"),
    ("Ring +44 20 7946 0958 please.", "phone", "<PHONE>"),
    ("Card 4111 1111 1111 1111 expires soon.", "card", "<CREDIT_CARD>"),
    ("Card 5500-0000-0000-0004 expires soon.", "card", "<CREDIT_CARD>"),
    ("Card 378282246310005 expires soon.", "card", "<CREDIT_CARD>"),
])
def test_each_pii_type_is_replaced_by_its_placeholder(text, kind, placeholder):
    scrubbed, counts = PIIScrubber().scrub(text)
    assert placeholder in scrubbed
    assert counts[kind] == 1 and sum(counts.values()) == 1, counts


@pytest.mark.parametrize("text", [
    "Python 3.11.7 was released; see PEP 8 and RFC 2822.",
    "Bind to 127.0.0.1 or 192.168.0.10 or 10.0.0.1 or ::1 in tests.",
    "The year 2024-01-15 at 12:30:45, pi is 3.14159, and 1,000,000 items cost $12,345.67.",
    "sys.maxsize is 9223372036854775807 on 64-bit builds.",   # 19 digits, fails Luhn
    "The number 1234567890123 is not a card.",                # fails Luhn
    "Use range(0, 65535) and the offset 0x7fff_ffff.",
    "a = b @ c  # matrix multiplication, not an email",
])
def test_ordinary_numbers_and_text_are_left_alone(text):
    scrubbed, counts = PIIScrubber().scrub(text)
    assert scrubbed == text and not any(counts.values()), (scrubbed, counts)


def test_luhn_check():
    assert luhn_valid("4111111111111111") and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112") and not luhn_valid("79927398710")


def test_disabled_types_are_kept():
    scrubbed, _ = PIIScrubber(emails=False).scrub("mail a@example.com or 8.8.8.8")
    assert "a@example.com" in scrubbed and "<IP_ADDRESS>" in scrubbed
