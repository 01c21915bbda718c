"""PII scrubbing catches each type in its printed forms and leaves ordinary numbers (and the stdlib docs) alone."""
from __future__ import annotations

import pytest

from components.data.filters.pii import PIIScrubber, iban_valid, luhn_valid


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


@pytest.mark.parametrize("text,scrubbed", [
    ("Pay to DE89 3704 0044 0532 0130 00 by Friday.", "Pay to <IBAN> by Friday."),
    ("IBAN: GB82WEST12345698765432.", "IBAN: <IBAN>."),
    ("Account GB82 WEST 1234 5698 7654 32 ABCD here.", "Account <IBAN> ABCD here."),  # a glued word is kept
    ("FR14 2004 1010 0505 0001 3M02 606", "<IBAN>"),
    ("Ring +49 (0)30 1234 5678 or +4930123456789.", "Ring <PHONE> or <PHONE>."),
    ("Call +1 415 555 2671, +1.415.555.2671 or +33 1 42 68 53 00.", "Call <PHONE>, <PHONE> or <PHONE>."),
    ("Call +44 20 7946 0958 2024 edition.", "Call <PHONE> 2024 edition."),  # a year after the number is kept
    ("Ring +49 30 12345678 now.", "Ring <PHONE> now."),
])
def test_ibans_and_printed_phone_forms_are_replaced(text, scrubbed):
    assert PIIScrubber().scrub(text)[0] == scrubbed


@pytest.mark.parametrize("text", [
    "DE89 3704 0044 0532 0130 01 fails mod-97.",
    "HTTP2 0000 AAAA BBBB CCCC and UTF8 1234 5678 9012 3456 are not accounts.",
    "Format '+000000120' and '+3.14159265' are numbers with a sign.",
])
def test_iban_and_phone_lookalikes_are_left_alone(text):
    assert PIIScrubber().scrub(text)[0] == text


def test_iban_check():
    assert iban_valid("DE89370400440532013000") and iban_valid("GB82 WEST 1234 5698 7654 32")
    assert not iban_valid("DE89370400440532013001") and not iban_valid("DE8937")


def test_language_reference_is_left_alone():
    """Precision on technical prose full of numbers, signs and format specs: the stdlib's language
    reference holds no personal data, so not one of its 79 topics may be rewritten. (In the module
    docstrings only the authors' e-mail addresses and a few IP-shaped version strings are hit;
    building those takes ~15 s, too slow for a unit test.)"""
    from components.data.stdlib_corpus import pydoc_topics

    scrubber = PIIScrubber()
    rewritten = [doc["id"] for doc in pydoc_topics() if scrubber.scrub(doc["text"])[0] != doc["text"]]
    assert rewritten == []
