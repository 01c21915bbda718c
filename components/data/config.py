"""Configs of the data stage's steps (light: pydantic only, no Ray / pyarrow at import time).

Filter thresholds default to the published values (Gopher / C4 / FineWeb as DataTrove ships
them) except where the field says otherwise: the built-in corpus is Python's documentation,
technical prose with code and hard-wrapped docstrings, which web-page heuristics over-prune.
With these defaults the stage keeps ~55% of the non-empty stdlib documents and ~80% of their
characters (most drops are module docstrings under 50 words); the published values keep ~10%.
"""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from components.config import Config
from flows.engine.registry import PII_SCRUBBED


class UnicodeConfig(Config):
    enabled: bool = Field(True, description="Normalise Unicode, strip control characters, unify line endings.")
    form: str = Field("NFC", description="Normalisation form: 'NFC' (keeps compatibility characters) or 'NFKC'.")

    @field_validator("form")
    @classmethod
    def _form(cls, v):
        if v not in ("NFC", "NFKC"):
            raise ValueError(f"form must be 'NFC' or 'NFKC', got {v!r}")
        return v


class GopherQualityConfig(Config):
    enabled: bool = Field(True, description="Apply Gopher's quality rules.")
    min_doc_words: int | None = Field(50, description="Drop docs with fewer words (published: 50).")
    max_doc_words: int | None = Field(100_000, description="Drop docs with more words (published: 100,000).")
    min_avg_word_length: float | None = Field(3, description="Minimum mean word length (published: 3).")
    max_avg_word_length: float | None = Field(10, description="Maximum mean word length (published: 10).")
    max_symbol_word_ratio: float | None = Field(0.1, description="Max '#' or ellipsis per word (published: 0.1).")
    max_bullet_lines_ratio: float | None = Field(0.9, description="Max fraction of bullet lines (published: 0.9).")
    max_ellipsis_lines_ratio: float | None = Field(0.3, description="Max fraction of lines ending in an ellipsis "
                                                   "(published: 0.3).")
    min_alpha_words_ratio: float | None = Field(0.6, description="Min fraction of words with a letter. Published: "
                                                "0.8; 0.6 here because punctuation tokens of code count as words "
                                                "(at 0.8 half of the stdlib docs are dropped).")
    min_stop_words: int | None = Field(2, description="Min distinct English stop words (published: 2).")


class GopherRepetitionConfig(Config):
    enabled: bool = Field(True, description="Apply Gopher's repetition rules.")
    dup_line_frac: float | None = Field(0.3, description="Max fraction of duplicated lines (published: 0.3).")
    dup_para_frac: float | None = Field(0.3, description="Max fraction of duplicated paragraphs (published: 0.3).")
    dup_line_char_frac: float | None = Field(0.2, description="Max char fraction in duplicated lines (published: 0.2).")
    dup_para_char_frac: float | None = Field(0.2, description="Max char fraction in duplicated paragraphs "
                                             "(published: 0.2).")
    top_n_grams: list[tuple[int, float]] = Field([(2, 0.2), (3, 0.18), (4, 0.16)], description=
                                                 "(n, max char fraction of the most frequent n-gram); published.")
    dup_n_grams: list[tuple[int, float]] = Field(
        [(5, 0.25), (6, 0.24), (7, 0.23), (8, 0.22), (9, 0.21), (10, 0.20)],
        description="(n, max char fraction in duplicated n-grams). Published: 0.15 at n=5 down to 0.10 at n=10; "
                    "+0.10 here because API references repeat phrasing ('Return the ...') by design: the "
                    "published values drop the largest stdlib docs (13% of the corpus's characters).")


class C4Config(Config):
    enabled: bool = Field(True, description="Apply C4's rules.")
    split_paragraph: bool = Field(False, description="Apply line rules to lines (True, published) or to sentences "
                                  "(False, DataTrove's option). False here: docstrings are hard-wrapped, so a "
                                  "line is rarely a sentence.")
    remove_lines: bool = Field(False, description="Rewrite the text keeping only passing lines (published: True). "
                               "False here: it would delete every code line of technical docs.")
    filter_no_terminal_punct: bool = Field(True, description="Lines must end in terminal punctuation (published).")
    min_num_sentences: int = Field(5, description="Drop docs with fewer passing sentences (published: 5; -1 off).")
    min_words_per_line: int = Field(3, description="Lines need this many words (published: 3; -1 off).")
    max_word_length: int = Field(1000, description="Lines with a longer word fail (published: 1000; -1 off).")
    filter_lorem_ipsum: bool = Field(True, description="Drop docs containing 'lorem ipsum' (published).")
    filter_javascript: bool = Field(True, description="Lines mentioning javascript fail (published).")
    filter_curly_bracket: bool = Field(False, description="Drop docs with '{' (published: True). False here: Python "
                                       "docs show dicts, sets and format strings.")
    filter_policy: bool = Field(True, description="Lines with cookie / terms-of-use boilerplate fail (published).")


class FineWebConfig(Config):
    enabled: bool = Field(True, description="Apply FineWeb's line-level rules.")
    line_punct_thr: float = Field(0.12, description="Min fraction of lines ending in terminal punctuation "
                                  "(published: 0.12).")
    short_line_thr: float = Field(0.67, description="Max fraction of short lines (published: 0.67).")
    short_line_length: int = Field(30, description="A line this long or shorter is short (published: 30).")
    char_duplicates_ratio: float = Field(0.1, description="Max char fraction in duplicated lines. Published: 0.01; "
                                         "0.1 here because reference docs repeat lines such as 'Added in version "
                                         "3.2.' (0.01 drops a quarter of the stdlib docs).")
    new_line_ratio: float = Field(0.3, description="Max newlines per word (published: 0.3).")


class LangIdConfig(Config):
    enabled: bool = Field(True, description="Keep only documents in `languages` (py3langid, model in the wheel).")
    languages: list[str] = Field(["en"], description="ISO 639-1 codes to keep.")
    min_score: float = Field(0.65, ge=0, le=1, description="Min probability of the top language (FineWeb: 0.65).")
    max_chars: int = Field(2000, ge=100, description="Classify only the first N characters (speed; language is "
                           "settled early).")


class PIIConfig(Config):
    enabled: bool = Field(True, description="Replace PII with typed placeholders (<EMAIL>, <IBAN>, <IP_ADDRESS>, "
                          "<PHONE>, <CREDIT_CARD>).")
    emails: bool = Field(True, description="Scrub email addresses.")
    ibans: bool = Field(True, description="Scrub IBANs, printed in groups of 4 or unbroken, that pass the mod-97 "
                        "check.")
    ips: bool = Field(True, description="Scrub globally routable IPv4/IPv6 addresses (private, loopback and "
                      "documentation ranges are kept).")
    phones: bool = Field(True, description="Scrub phone numbers written with phone punctuation.")
    cards: bool = Field(True, description="Scrub 13-19 digit numbers that pass the Luhn check.")

    def scrubs_everything(self) -> bool:
        """Whether the output counts as PII-scrubbed: a pass with a type turned off does not."""
        return self.enabled and all(self.model_dump(exclude={"enabled"}).values())


class ScrubConfig(Config):
    """What data.corpus does to every document as it is read, before anything is written."""

    unicode: UnicodeConfig = Field(default_factory=UnicodeConfig, description="Unicode normalisation.")
    pii: PIIConfig = Field(default_factory=PIIConfig, description="PII placeholders in text, title and id. "
                           "Turning it (or one of its types) off makes the corpus unscrubbed: steps that need "
                           "scrubbed documents then fail validation unless pii_known_clean is set.")


class CorpusConfig(Config):
    include_stdlib_topics: bool = Field(True, description="Include pydoc_data.topics (79 language-reference topics).")
    include_stdlib_modules: bool = Field(True, description="Include one document per stdlib module built from its "
                                         "docstrings (module, public classes, functions, methods).")
    paths: list[str] = Field(default_factory=list, description="Folders of .txt (one doc per file), .jsonl and "
                             ".parquet files (one doc per record) to add to the corpus; .txt and .jsonl may be "
                             "gzip- or zstd-compressed (.txt.gz, .jsonl.zst, ...).")
    text_field: str = Field("text", description="Field / column holding the text in .jsonl and .parquet files.")
    max_docs: int | None = Field(None, ge=1, description="Stop reading once N documents are kept (sources in order: "
                                 "topics, modules, paths); None reads everything. report.json notes the stop.")
    min_chars: int = Field(1, ge=0, description="Documents with fewer non-whitespace characters are dropped as "
                           "corpus:empty.")
    max_chars: int = Field(1_000_000, ge=1, description="Documents longer than this are dropped as corpus:too_large "
                           "(one enormous record would stall a batch).")
    docs_per_shard: int = Field(2000, ge=1, description="Documents per output parquet shard.")
    scrub: ScrubConfig = Field(default_factory=ScrubConfig, description="Unicode normalisation and PII "
                               "placeholders applied to every document as it is read, so no artifact holds raw "
                               "personal data (data.clean's PII pass then finds nothing left).")
    pii_known_clean: bool = Field(False, description="Declare that the sources hold no personal data, so steps "
                                  "that need PII-scrubbed documents (rag.index, sft.dataset, tokenize.*) accept "
                                  "this corpus with scrub.pii off. Set it only for text you know is clean "
                                  "(generated, licensed public text); it is recorded in the step's params.")

    # How a recipe gets the trait from this step (recipe validation formats {step} into it).
    TRAIT_FIXES: ClassVar[dict[str, str]] = {PII_SCRUBBED: (
        "turn scrubbing back on (remove steps.{step}.config.scrub.pii, or set its enabled and every type to "
        "true), or set steps.{step}.config.pii_known_clean: true if the corpus is known to hold no personal data")}

    def output_traits(self) -> set[str]:
        return {PII_SCRUBBED} if self.scrub.pii.scrubs_everything() or self.pii_known_clean else set()

    @model_validator(mode="after")
    def _some_source(self):
        if not (self.include_stdlib_topics or self.include_stdlib_modules or self.paths):
            raise ValueError("data.corpus has no source: set include_stdlib_topics / include_stdlib_modules "
                             "or give folders in paths")
        return self


class CleanConfig(Config):
    """The filters run in this order (FineWeb's); the first that drops a document names the reason."""

    unicode: UnicodeConfig = Field(default_factory=UnicodeConfig, description="Unicode normalisation.")
    langid: LangIdConfig = Field(default_factory=LangIdConfig, description="Language identification.")
    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig,
                                                      description="Gopher repetition rules.")
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig, description="Gopher quality.")
    c4: C4Config = Field(default_factory=C4Config, description="C4 rules.")
    fineweb: FineWebConfig = Field(default_factory=FineWebConfig, description="FineWeb line rules.")
    pii: PIIConfig = Field(default_factory=PIIConfig, description="PII scrubbing (rewrites, never drops).")
    batch_size: int = Field(64, ge=1, description="Documents per Ray Data block: one task each, and one output "
                            "shard (docs/part-<block>.parquet, written by the worker) per block that keeps any.")
    samples_per_reason: int = Field(5, ge=0, description="Dropped documents kept per reason in report.json.")
    max_workers: int | None = Field(None, ge=1, description="At most this many concurrent tasks per Ray Data stage; "
                                    "None lets Ray use the cluster. The output is byte-identical for any value.")

    TRAIT_FIXES: ClassVar[dict[str, str]] = {PII_SCRUBBED: (
        "set steps.{step}.config.pii.enabled and every PII type to true, or scrub the documents upstream "
        "(data.corpus scrubs by default)")}

    def output_traits(self) -> set[str]:
        # Scrubbed input stays scrubbed (the kind passes the trait on); this covers raw input.
        return {PII_SCRUBBED} if self.pii.scrubs_everything() else set()


class DedupConfig(Config):
    exact: bool = Field(True, description="Remove exact duplicates (same normalised text: NFKC, lower-case, "
                        "collapsed whitespace).")
    near: bool = Field(True, description="Remove near duplicates with MinHash LSH.")
    ngram: int = Field(5, ge=1, description="Word n-gram size of the shingles (FineWeb: 5).")
    num_bands: int = Field(14, ge=1, description="LSH bands (FineWeb: 14).")
    rows_per_band: int = Field(8, ge=1, description="Hashes per band (FineWeb: 8); LSH proposes pairs above "
                               "about (1/bands)^(1/rows) = 0.72 at 14x8, which `threshold` then verifies.")
    seed: int = Field(1, description="Seed of the MinHash permutations (same seed = same signatures).")
    threshold: float = Field(0.8, gt=0, le=1, description="A candidate pair is a duplicate only when the exact "
                             "Jaccard of the two documents' word-shingle sets is at least this; every removed "
                             "document is at least this similar to the kept document it is assigned to.")
    batch_size: int = Field(256, ge=1, description="Documents per Ray Data block: one task each, and one output "
                            "shard (docs/part-<block>.parquet, written by the worker) per block that keeps any.")
    max_workers: int | None = Field(None, ge=1, description="At most this many concurrent tasks in the read/write "
                                    "stages; None lets Ray use the cluster. The output is byte-identical for any "
                                    "value.")
    num_partitions: int = Field(4, ge=1, description="Partitions of the bucket keys, candidate pairs, verification "
                                "and decisions, one Ray task each per stage (raise on a cluster: about 2x the CPUs).")
    shuffle_strategy: Literal["sort_shuffle_pull_based", "hash_shuffle"] = Field(
        "sort_shuffle_pull_based", description="Ray Data shuffle strategy set while the step runs. The dedup stages "
        "are plain Ray tasks and shuffle nothing through Ray Data, so today it changes nothing; accepted so that "
        "existing configs stay valid.")
    max_clusters_in_report: int = Field(50, ge=0, description="Largest duplicate clusters listed in report.json.")

    @model_validator(mode="after")
    def _something(self):
        if not (self.exact or self.near):
            raise ValueError("data.dedup with exact=false and near=false does nothing; enable one, or drop the step")
        return self
