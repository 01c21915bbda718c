"""The cleaning pipeline: the configured filters in order, applied to one batch of documents.

The first filter that drops a document names the reason; rewriting filters (Unicode, PII, C4
with remove_lines) pass their text on. ``clean_batch`` is what Ray Data's ``map_batches``
runs on every worker; it is plain Python, so tests and notebooks can call it directly.
"""
from __future__ import annotations

import json
from functools import lru_cache

from components.data.config import CleanConfig
from components.data.filters.base import Filter
from components.data.filters.c4 import C4Quality
from components.data.filters.fineweb import FineWebQuality
from components.data.filters.gopher_quality import GopherQuality
from components.data.filters.gopher_repetition import GopherRepetition
from components.data.filters.langid import LanguageId
from components.data.filters.pii import PLACEHOLDERS, PIIScrubber
from components.data.filters.unicode_norm import UnicodeNormalizer

# Rewrite counters carried as int columns next to each document, summed into the report.
COUNTERS = ("text_rewritten", "c4_lines_removed", *(f"pii_{k}" for k in PLACEHOLDERS))


def build_filters(config: CleanConfig) -> list[Filter]:
    """The enabled filters in FineWeb's order (language, repetition, quality, C4, FineWeb), then PII.

    The order decides which reason a document that fails several rules is counted under.
    """
    c = config
    filters: list[Filter] = []
    if c.unicode.enabled:
        filters.append(UnicodeNormalizer(c.unicode.form))
    if c.langid.enabled:
        filters.append(LanguageId(tuple(c.langid.languages), c.langid.min_score, c.langid.max_chars))
    if c.gopher_repetition.enabled:
        g = c.gopher_repetition.model_dump(exclude={"enabled"})
        g["top_n_grams"], g["dup_n_grams"] = tuple(map(tuple, g["top_n_grams"])), tuple(map(tuple, g["dup_n_grams"]))
        filters.append(GopherRepetition(**g))
    if c.gopher_quality.enabled:
        filters.append(GopherQuality(**c.gopher_quality.model_dump(exclude={"enabled"})))
    if c.c4.enabled:
        filters.append(C4Quality(**c.c4.model_dump(exclude={"enabled"})))
    if c.fineweb.enabled:
        filters.append(FineWebQuality(**c.fineweb.model_dump(exclude={"enabled"})))
    if c.pii.enabled:
        filters.append(PIIScrubber(**c.pii.model_dump(exclude={"enabled"})))
    return filters


def clean_text(text: str, filters: list[Filter]) -> tuple[str, str, dict[str, int]]:
    """(final text, drop reason or "", rewrite counters) for one document."""
    counts = dict.fromkeys(COUNTERS, 0)
    original = text
    for f in filters:
        verdict = f.apply(text)
        if not verdict.keep:
            return text, verdict.reason, counts
        if verdict.text is not None:
            text = verdict.text
        if verdict.counts:
            for k, v in verdict.counts.items():
                counts[k] = counts.get(k, 0) + v
    counts["text_rewritten"] = int(text != original)
    return text, "", counts


@lru_cache(maxsize=4)
def _filters_for(config_json: str) -> list[Filter]:
    # Built once per worker process (py3langid's model takes ~0.3 s to load), keyed by the config.
    return build_filters(CleanConfig.model_validate_json(config_json))


def clean_batch(batch, config_json: str):
    """Ray Data batch function (pyarrow in, pyarrow out): the cleaned text, ``drop_reason``,
    ``num_chars_in`` (length before cleaning) and the rewrite counter columns."""
    import pyarrow as pa

    filters = _filters_for(config_json)
    texts, reasons, lengths = [], [], []
    counters = {k: [] for k in COUNTERS}
    for text in batch.column("text").to_pylist():
        lengths.append(len(text or ""))
        new, reason, counts = clean_text(text or "", filters)
        texts.append(new)
        reasons.append(reason)
        for k in COUNTERS:
            counters[k].append(counts.get(k, 0))
    out = batch.set_column(batch.schema.get_field_index("text"), "text", pa.array(texts, pa.string()))
    out = out.append_column("drop_reason", pa.array(reasons, pa.string()))
    out = out.append_column("num_chars_in", pa.array(lengths, pa.int64()))
    for k in COUNTERS:
        out = out.append_column(k, pa.array(counters[k], pa.int64()))
    return out


def config_json(config: CleanConfig) -> str:
    return json.dumps(config.model_dump(mode="json"), sort_keys=True)


def clean_block(batch, config_json: str, out_dir: str, samples_per_reason: int, send: dict | None = None):
    """Ray Data function for one input block: clean it, write the kept documents as the block's
    shard (sent back through ``send`` from a node without the driver's disk: ``send_back``), and return
    one summary row (counts, samples, rewrite counters, files sent) for the driver."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from components.data.accounting import block_summary
    from components.data.send_back import writer_folder
    from components.data.shards import block_of, write_docs_part, writer_node

    block = block_of(batch)
    out = clean_batch(batch, config_json)
    reasons = out.column("drop_reason").to_pylist()
    kept = out.filter(pc.equal(out.column("drop_reason"), ""))
    sent = []
    with writer_folder(out_dir, send, sent) as folder:
        write_docs_part(kept, str(folder), block)
    drops = [(r, i, t) for r, i, t in zip(reasons, out.column("id").to_pylist(), out.column("text").to_pylist()) if r]
    summary = block_summary(out.num_rows, kept.num_rows, drops, samples_per_reason)
    summary["num_chars_in"] = pc.sum(out.column("num_chars_in")).as_py() or 0
    summary["num_chars_kept"] = pc.sum(pc.utf8_length(kept.column("text"))).as_py() or 0
    summary["rewrites"] = json.dumps({k: pc.sum(out.column(k)).as_py() or 0 for k in COUNTERS})
    summary["node_id"], summary["sent"] = writer_node(), json.dumps(sent)
    return pa.table({k: [v] for k, v in {"block": block, **summary}.items()})
