"""Flow steps of the data stage: data.corpus (read + scrub), data.clean, data.dedup.

Each reads/writes the ``docs/part-*.parquet`` layout and writes a ``report.json`` whose counts
satisfy in = kept + dropped-by-reason; the same numbers go to MLflow through ``ctx.log_metrics``.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator

from components.artifacts import Docs
from components.data.accounting import Accounting
from components.data.config import CleanConfig, CorpusConfig, DedupConfig
from components.data.filters.pii import PIIScrubber
from components.data.scrub import DocScrubber
from components.data.shards import docs_dataset, ordered_execution
from flows.engine.registry import step_kind


def _finish(ctx, acc: Accounting, started: float, extra_metrics: dict | None = None) -> dict[str, float]:
    acc.extra["elapsed_s"] = round(time.perf_counter() - started, 3)
    report = acc.write(ctx.output)
    metrics = {**acc.metrics(), **(extra_metrics or {}), "elapsed_s": acc.extra["elapsed_s"]}
    ctx.log_metrics(metrics)
    ctx.log_artifact(report)
    return metrics


# -- data.corpus -----------------------------------------------------------------------------
def corpus_documents(config: CorpusConfig, acc: Accounting, scrubber: DocScrubber | None = None) -> Iterator[dict]:
    """Every document the config names, scrubbed, after the size rules, each counted exactly once.

    Scrubbing comes first so that the size rules, the report's samples and the output all see
    the same text, and none of them the raw one.
    """
    from components.data.readers import read_folder
    from components.data.stdlib_corpus import stdlib_documents

    scrubber = scrubber or DocScrubber(config.scrub)

    def sources():
        yield from stdlib_documents(config.include_stdlib_topics, config.include_stdlib_modules)
        for folder in config.paths:
            yield from read_folder(folder, acc, config.text_field)

    seen_ids: set[str] = set()
    for position, doc in enumerate(sources()):
        if config.max_docs is not None and acc.num_kept >= config.max_docs:
            acc.extra["stopped_at_max_docs"] = True  # the rest is not read, so it is not counted as "in"
            return
        doc = scrubber.doc(doc, position)
        text = doc["text"]
        if len(text.strip()) < max(config.min_chars, 1):
            acc.drop("corpus:empty", doc["id"], text)
        elif len(text) > config.max_chars:
            acc.drop("corpus:too_large", doc["id"], text)
        elif doc["id"] in seen_ids:  # ids key dedup clusters and train/val splits: they must be unique
            acc.drop("corpus:duplicate_id", doc["id"], text)
        else:
            seen_ids.add(doc["id"])
            acc.keep()
            yield doc


@step_kind("data.corpus",
           description="Read the built-in stdlib-docs corpus and/or folders of .txt/.jsonl/.parquet into "
                       "docs/part-*.parquet, Unicode-normalised and PII-scrubbed as read, counting unreadable, "
                       "empty and oversized inputs.")
def run_corpus(ctx, config: CorpusConfig) -> dict[str, float]:
    from pathlib import Path

    for folder in config.paths:  # fail before reading anything, not after minutes of reading
        if not Path(folder).expanduser().is_dir():
            raise ValueError(f"data.corpus: paths entry {folder!r} is not a directory; "
                             "give folders holding .txt, .jsonl or .parquet files")
    started = time.perf_counter()
    scrubber = DocScrubber(config.scrub)
    # Readers report unreadable records with a piece of the raw line: those samples are scrubbed too.
    acc = Accounting("data.corpus", redact=scrubber.text)
    num_chars = 0

    def counted():
        nonlocal num_chars
        for doc in corpus_documents(config, acc, scrubber):
            num_chars += len(doc["text"])
            yield doc

    Docs.write(counted(), ctx.output, config.docs_per_shard)
    acc.extra["num_chars"] = num_chars
    acc.extra["rewrites"] = dict(scrubber.counts)
    return _finish(ctx, acc, started, {"num_chars": num_chars,
                                       **{f"rewrites/{k}": v for k, v in scrubber.counts.items()}})


# -- data.clean ------------------------------------------------------------------------------
@step_kind("data.clean", inputs=("docs",), num_cpus=0, passes_traits_from=("docs",),
           description="Unicode, Gopher quality + repetition, C4, FineWeb, language-id filters and PII "
                       "scrubbing on Ray Data; report.json has counts and samples per drop reason.")
def run_clean(ctx, config: CleanConfig) -> dict[str, float]:
    from components.data.clean import COUNTERS, clean_batch, config_json

    docs = Docs.of(ctx)
    started = time.perf_counter()
    # A dropped document is dropped before the PII filter (it runs last), so its sample in
    # report.json would be raw text: scrub the samples with the same settings.
    pii = PIIScrubber(**config.pii.model_dump(exclude={"enabled"})) if config.pii.enabled else None
    acc = Accounting("data.clean", max_samples_per_reason=config.samples_per_reason,
                     redact=(lambda text: pii.scrub(text)[0]) if pii is not None else None)
    totals = dict.fromkeys(COUNTERS, 0)
    chars = {"in": 0, "kept": 0}
    # A Dataset copies the DataContext when it is created: order settings go first.
    with ordered_execution():
        ds = docs_dataset(docs, config.batch_size)
        num_blocks = ds.num_blocks()
        ds = ds.map_batches(clean_batch, fn_kwargs={"config_json": config_json(config)},
                            batch_format="pyarrow", batch_size=config.batch_size, zero_copy_batch=True)

    def kept_docs():
        batches = ds.iter_batches(batch_format="pyarrow", batch_size=None)
        for batch in ctx.progress(batches, total=num_blocks, desc="data.clean batches"):
            for row in batch.to_pylist():
                for k in COUNTERS:
                    totals[k] += row[k]
                chars["in"] += row["num_chars_in"]
                if row["drop_reason"]:
                    acc.drop(row["drop_reason"], row["id"], row["text"])
                else:
                    acc.keep()
                    chars["kept"] += len(row["text"])
                    yield {c: row[c] for c in Docs.COLUMNS}

    Docs.write(kept_docs(), ctx.output, config.docs_per_shard)
    acc.extra["rewrites"] = totals
    acc.extra["num_chars_in"], acc.extra["num_chars_kept"] = chars["in"], chars["kept"]
    kept_chars = chars["kept"] / chars["in"] if chars["in"] else 0.0
    return _finish(ctx, acc, started, {"kept_chars_fraction": kept_chars,
                                       **{f"rewrites/{k}": v for k, v in totals.items()}})


# -- data.dedup ------------------------------------------------------------------------------
@step_kind("data.dedup", inputs=("docs",), num_cpus=0, passes_traits_from=("docs",),
           description="Exact + MinHash LSH near-duplicate removal on Ray Data (map_batches signatures, "
                       "groupby buckets, connected components); clusters.jsonl lists every cluster.")
def run_dedup(ctx, config: DedupConfig) -> dict[str, float]:
    from components.data.dedup_ray import dedup_clusters

    docs = Docs.of(ctx)
    started = time.perf_counter()
    with ordered_execution(config.shuffle_strategy):
        clusters = dedup_clusters(docs_dataset(docs, config.batch_size, ("id", "text")), config)
    dropped = {d: c for c in clusters for d in c.duplicates}
    acc = Accounting("data.dedup")

    def survivors():  # the driver streams the input once more; only ids in `dropped` are removed
        for row in docs.rows():
            cluster = dropped.get(row["id"])
            if cluster is None:
                acc.keep()
                yield row
            else:
                acc.drop(f"dedup:{cluster.kind}_duplicate", row["id"], row["text"])

    Docs.write(survivors(), ctx.output, config.docs_per_shard)
    by_kind = {k: sum(1 for c in clusters if c.kind == k) for k in ("exact", "near")}
    acc.extra["num_clusters"] = len(clusters)
    acc.extra["clusters_by_kind"] = by_kind
    acc.extra["clusters"] = [c.to_dict() for c in clusters[: config.max_clusters_in_report]]
    (ctx.output / "clusters.jsonl").write_text("".join(json.dumps(c.to_dict()) + "\n" for c in clusters))
    ctx.log_artifact(ctx.output / "clusters.jsonl")
    return _finish(ctx, acc, started, {"num_clusters": len(clusters), "num_exact_clusters": by_kind["exact"],
                                       "num_near_clusters": by_kind["near"]})
