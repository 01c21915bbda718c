"""Each cleaning filter drops crafted bad documents (with the right reason) and keeps good ones."""
from __future__ import annotations

import pytest

from components.data.clean import build_filters, clean_text
from components.data.config import CleanConfig
from components.data.filters.c4 import C4Quality
from components.data.filters.fineweb import FineWebQuality
from components.data.filters.gopher_quality import GopherQuality
from components.data.filters.gopher_repetition import GopherRepetition
from components.data.filters.langid import LanguageId
from components.data.filters.unicode_norm import UnicodeNormalizer

GOOD = (
    "The interpreter reads a file and executes the statements in order. Each module has its own "
    "namespace, and names defined at the top level of a module become attributes of that module.\n"
    "When a function is called, a new local namespace is created for it. The namespace is deleted "
    "when the function returns or raises an exception that is not handled within the function.\n"
    "Import statements bind names in the local namespace to modules that have been loaded. The "
    "first import of a module executes its code; later imports reuse the cached module object.\n"
    "Classes provide a means of bundling data and functionality together. Creating a new class "
    "creates a new type of object, allowing new instances of that type to be made with ease."
)


@pytest.fixture(scope="module")
def good_text() -> str:
    return GOOD


def test_good_document_passes_every_default_filter(good_text):
    text, reason, _ = clean_text(good_text, build_filters(CleanConfig()))
    assert reason == "", f"the default chain dropped prose: {reason}"
    assert text == good_text


@pytest.mark.parametrize("text,reason", [
    ("Too short to be a document.", "gopher_quality:short_doc"),
    (" ".join(["a", "to", "of", "be"] * 40), "gopher_quality:below_avg_word_length"),
    (" ".join(["#python"] * 60 + ["the", "module", "and", "function", "of"] * 20), "gopher_quality:too_many_hashes"),
    ("\n".join(["- the item of and"] * 60), "gopher_quality:too_many_bullets"),
    (" ".join(str(10_000 + i) for i in range(100)) + " the module and function", "gopher_quality:below_alpha_words_ratio"),
    (" ".join(["lorem", "ipsum", "dolor", "amet", "sit"] * 20), "gopher_quality:not_enough_stop_words"),
])
def test_gopher_quality_drops_with_reason(text, reason):
    verdict = GopherQuality(min_alpha_words_ratio=0.8).apply(text)
    assert (verdict.keep, verdict.reason) == (False, reason)


def test_gopher_quality_keeps_prose(good_text):
    assert GopherQuality(min_alpha_words_ratio=0.8).apply(good_text).keep


@pytest.mark.parametrize("text,reason", [
    ("\n\n".join(["The same paragraph of text again and again."] * 10), "gopher_repetition:dup_para_frac"),
    ("\n".join(["same line", "other line " + str(i)][i % 2] for i in range(40)), "gopher_repetition:dup_line_frac"),
    (" ".join(["the cat"] * 60) + " " + GOOD, "gopher_repetition:top_2_gram"),
])
def test_gopher_repetition_drops_with_reason(text, reason):
    verdict = GopherRepetition().apply(text)
    assert (verdict.keep, verdict.reason) == (False, reason)


def test_gopher_repetition_catches_duplicated_long_ngrams(good_text):
    sentence = "a module executes its code once and later imports reuse the cached object"
    text = good_text + "\n" + " ".join([sentence] * 4)
    verdict = GopherRepetition().apply(text)
    assert not verdict.keep and verdict.reason.startswith("gopher_repetition:")


def test_gopher_repetition_keeps_prose_and_short_docs(good_text):
    assert GopherRepetition().apply(good_text).keep
    assert GopherRepetition().apply("A short note with no repeats.").keep  # unique n-grams are not repetition


@pytest.mark.parametrize("text,reason", [
    (GOOD + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit.", "c4:lorem_ipsum"),
    (GOOD + "\nUse a dict such as {'a': 1} for the mapping here.", "c4:curly_bracket"),
    ("One sentence here. Two sentences here.", "c4:too_few_sentences"),
])
def test_c4_drops_with_reason(text, reason):
    verdict = C4Quality().apply(text)
    assert (verdict.keep, verdict.reason) == (False, reason)


def test_c4_published_mode_removes_failing_lines(good_text):
    text = good_text + "\nMenu\nThis site uses cookies to improve the experience of users.\nEnable JavaScript to view it."
    verdict = C4Quality().apply(text)
    assert verdict.keep and verdict.text is not None
    assert "Menu" not in verdict.text and "cookies" not in verdict.text and "JavaScript" not in verdict.text
    assert "namespace" in verdict.text


def test_c4_sentence_mode_keeps_code_intact(good_text):
    text = good_text + "\n\n    def f(x):\n        return {x: 1}\n"
    verdict = C4Quality(split_paragraph=False, remove_lines=False, filter_curly_bracket=False).apply(text)
    assert verdict.keep and verdict.text is None


@pytest.mark.parametrize("text,reason", [
    ("\n".join(f"item number {i} without an end" for i in range(20)), "fineweb:line_punct_ratio"),
    ("\n".join(["Short one.", "Tiny."] * 10 + [GOOD]), "fineweb:short_line_ratio"),
    (GOOD + "\n" + "\n".join(["This whole line is repeated many times in the page."] * 5), "fineweb:char_dup_ratio"),
])
def test_fineweb_drops_with_reason(text, reason):
    verdict = FineWebQuality().apply(text)
    assert (verdict.keep, verdict.reason) == (False, reason)


def test_fineweb_keeps_prose(good_text):
    assert FineWebQuality().apply(good_text).keep


def test_langid_keeps_english_drops_others(good_text):
    lid = LanguageId(("en",), 0.65)
    assert lid.apply(good_text).keep
    german = ("Der Interpreter liest eine Datei und führt die Anweisungen der Reihe nach aus. Jedes Modul hat "
              "seinen eigenen Namensraum, und die Namen werden zu Attributen des Moduls.")
    verdict = lid.apply(german)
    assert (verdict.keep, verdict.reason) == (False, "langid:not_en")


def test_unicode_normalises_and_drops_empty():
    verdict = UnicodeNormalizer("NFC").apply("Cafe\u0301 line\r\nnext\x00line")
    assert verdict.keep and verdict.text == "Caf\u00e9 line\nnextline"
    assert UnicodeNormalizer().apply("   \x00 \n").reason == "unicode:empty"
    assert UnicodeNormalizer("NFKC").apply("ﬁle").text == "file"
    with pytest.raises(ValueError, match="NFC"):
        UnicodeNormalizer("NFD")


def test_chain_reports_first_failing_filter_and_counts_rewrites(good_text):
    filters = build_filters(CleanConfig())
    _, reason, _ = clean_text("This is a short English sentence about the import system of Python.", filters)
    assert reason == "gopher_quality:short_doc"
    text, reason, counts = clean_text(good_text + "\nWrite to jane.doe@example.org for help.", filters)
    assert reason == "" and "<EMAIL>" in text and counts["pii_email"] == 1 and counts["text_rewritten"] == 1


def test_disabled_filters_are_not_built():
    cfg = CleanConfig(langid={"enabled": False}, pii={"enabled": False}, c4={"enabled": False})
    names = [f.name for f in build_filters(cfg)]
    assert names == ["unicode", "gopher_repetition", "gopher_quality", "fineweb"]
