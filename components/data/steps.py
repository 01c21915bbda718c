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
from components.data.send_back import receive, send_target
from components.data.shards import (
    docs_blocks,
    docs_dataset,
    ensure_nonempty,
    ordered_execution,
    writer_node_tags,
)
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
def receive_shards(ctx, send: dict | None, blocks: list[dict]) -> None:
    """Fetch the shards that writers on other nodes sent back (``send_back``) and tag which nodes wrote
    how many blocks, and how many blocks came back through the bucket."""
    sent = [rel for row in blocks for rel in json.loads(row["sent"])]
    receive(ctx.output, send, sent)
    ctx.set_tags(writer_node_tags((r["node_id"] for r in blocks), sum(1 for r in blocks if json.loads(r["sent"]))))


def gather_blocks(ctx, summaries, num_blocks: int, acc: Accounting, desc: str) -> list[dict]:
    """Stream the workers' one-row block summaries (in block order) into ``acc``; return them."""
    rows = []
    batches = summaries.iter_batches(batch_format="pyarrow", batch_size=None)
    for batch in ctx.progress(batches, total=num_blocks, desc=desc):
        for row in batch.to_pylist():
            acc.add_block(row)
            rows.append({k: v for k, v in row.items() if k not in ("samples", "drops")})
    return rows


@step_kind("data.clean", inputs=("docs",), num_cpus=0, passes_traits_from=("docs",),
           description="Unicode, Gopher quality + repetition, C4, FineWeb, language-id filters and PII "
                       "scrubbing on Ray Data, each worker writing its block's shard; report.json has counts "
                       "and samples per drop reason.")
def run_clean(ctx, config: CleanConfig) -> dict[str, float]:
    from components.data.clean import COUNTERS, clean_block, config_json

    docs = Docs.of(ctx)
    send = send_target(ctx)
    started = time.perf_counter()
    # A dropped document is dropped before the PII filter (it runs last), so its sample in
    # report.json would be raw text: scrub the samples with the same settings.
    pii = PIIScrubber(**config.pii.model_dump(exclude={"enabled"})) if config.pii.enabled else None
    acc = Accounting("data.clean", max_samples_per_reason=config.samples_per_reason,
                     redact=(lambda text: pii.scrub(text)[0]) if pii is not None else None)
    # A Dataset copies the DataContext when it is created: order settings go first.
    with ordered_execution():
        ds = docs_dataset(docs, config.batch_size)
        num_blocks = ds.num_blocks()
        summaries = ds.map_batches(
            clean_block, fn_kwargs={"config_json": config_json(config), "out_dir": str(ctx.output),
                                    "samples_per_reason": config.samples_per_reason, "send": send},
            batch_format="pyarrow", batch_size=None, zero_copy_batch=True, concurrency=config.max_workers)
        blocks = gather_blocks(ctx, summaries, num_blocks, acc, "data.clean blocks")
    receive_shards(ctx, send, blocks)
    ensure_nonempty(ctx.output)
    totals = dict.fromkeys(COUNTERS, 0)
    for row in blocks:
        for k, v in json.loads(row["rewrites"]).items():
            totals[k] += v
    chars_in, chars_kept = sum(r["num_chars_in"] for r in blocks), sum(r["num_chars_kept"] for r in blocks)
    acc.extra["rewrites"] = totals
    acc.extra["num_chars_in"], acc.extra["num_chars_kept"] = chars_in, chars_kept
    kept_chars = chars_kept / chars_in if chars_in else 0.0
    return _finish(ctx, acc, started, {"kept_chars_fraction": kept_chars,
                                       **{f"rewrites/{k}": v for k, v in totals.items()}})


# -- data.dedup ------------------------------------------------------------------------------
def dedup_block(batch, chunk_refs: list | None, out_dir: str, samples_per_reason: int, send: dict | None = None):
    """Ray Data function for one input block: drop its removed documents, write the rest as the
    block's shard (sent back through ``send`` from a node without the driver's disk), return one summary row."""
    import pyarrow as pa

    from components.data.accounting import block_summary
    from components.data.dedup_ray import removed_kinds
    from components.data.send_back import writer_folder
    from components.data.shards import block_of, write_docs_part, writer_node

    block = block_of(batch)
    removed = removed_kinds(chunk_refs) if chunk_refs else {}
    ids = batch.column("id").to_pylist()
    keep = [doc_id not in removed for doc_id in ids]
    sent = []
    with writer_folder(out_dir, send, sent) as folder:
        write_docs_part(batch.filter(pa.array(keep, pa.bool_())), str(folder), block)
    texts = batch.column("text").to_pylist()
    drops = [(f"dedup:{removed[i]}_duplicate", i, t) for i, t, k in zip(ids, texts, keep) if not k]
    summary = block_summary(len(ids), sum(keep), drops, samples_per_reason)
    summary.update(node_id=writer_node(), sent=json.dumps(sent))
    return pa.table({k: [v] for k, v in {"block": block, **summary}.items()})


@step_kind("data.dedup", inputs=("docs",), num_cpus=0, passes_traits_from=("docs",),
           description="Exact + MinHash LSH near-duplicate removal on Ray tasks: candidates verified by exact "
                       "shingle Jaccard, components by union-find over document numbers, every removed document a verified "
                       "duplicate of a kept one; workers write the shards; clusters.jsonl lists every cluster "
                       "with each duplicate's similarity to its survivor.")
def run_dedup(ctx, config: DedupConfig) -> dict[str, float]:
    import ray.data

    from components.data.dedup_ray import dedup_removals, sorted_report_rows

    docs = Docs.of(ctx)
    send = send_target(ctx)
    started = time.perf_counter()
    acc = Accounting("data.dedup")
    with ordered_execution(config.shuffle_strategy):
        block_refs, block_rows = docs_blocks(docs, config.batch_size, row_numbers=True)
        clusters = dedup_removals(block_refs, block_rows, config)  # per partition, refs of its sorted report-row chunks
        # The writers map the same blocks (read once). Made after dedup: from_arrow_refs waits for every
        # block's metadata, so made first it would hold the keys tasks back until all reads finished.
        ds = ray.data.from_arrow_refs(block_refs)
        num_blocks = len(block_refs)
        refs = [r for part in clusters for r in part] if clusters is not None else None
        summaries = ds.map_batches(
            dedup_block, fn_kwargs={"chunk_refs": refs, "out_dir": str(ctx.output),
                                    "samples_per_reason": acc.max_samples_per_reason, "send": send},
            batch_format="pyarrow", batch_size=None, zero_copy_batch=True, concurrency=config.max_workers)
        blocks = gather_blocks(ctx, summaries, num_blocks, acc, "data.dedup blocks")
    receive_shards(ctx, send, blocks)
    ensure_nonempty(ctx.output)

    # clusters.jsonl is merged from the partitions' sorted chunks: the driver holds one chunk of each.
    by_kind, listed, num_clusters, min_sim = {"exact": 0, "near": 0}, [], 0, None
    with open(ctx.output / "clusters.jsonl", "w") as f:
        for kind, sim, line in sorted_report_rows(clusters) if clusters is not None else []:
            f.write(line + "\n")
            by_kind[kind] += 1
            num_clusters += 1
            min_sim = sim if min_sim is None else min(min_sim, sim)
            if len(listed) < config.max_clusters_in_report:
                listed.append(json.loads(line))
    acc.extra["num_clusters"] = num_clusters
    acc.extra["clusters_by_kind"] = by_kind
    acc.extra["threshold"] = config.threshold
    acc.extra["min_similarity_to_survivor"] = min_sim
    acc.extra["clusters"] = listed
    ctx.log_artifact(ctx.output / "clusters.jsonl")
    extra = {"num_clusters": num_clusters, "num_exact_clusters": by_kind["exact"],
             "num_near_clusters": by_kind["near"]}
    if min_sim is not None:
        extra["min_similarity_to_survivor"] = min_sim
    return _finish(ctx, acc, started, extra)
