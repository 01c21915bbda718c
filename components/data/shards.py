"""Read and write the stage's document layout: ``docs/part-*.parquet`` with str columns id, text, source, title."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

DOC_COLUMNS = ("id", "text", "source", "title")


def doc_schema():
    import pyarrow as pa

    return pa.schema([(c, pa.string()) for c in DOC_COLUMNS])


def shard_paths(artifact_dir: str | Path) -> list[Path]:
    """The parquet shards of a docs artifact, in name order; an empty list is an error upstream."""
    docs = Path(artifact_dir) / "docs"
    paths = sorted(docs.glob("part-*.parquet"))
    if not paths:
        raise FileNotFoundError(f"{docs} holds no part-*.parquet shards; is {artifact_dir} a docs artifact "
                                "(the output of data.corpus, data.clean or data.dedup)?")
    return paths


def write_docs(records: Iterable[dict], artifact_dir: str | Path, docs_per_shard: int = 2000) -> int:
    """Write records (dicts with the four str columns) as numbered shards; returns how many were written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = Path(artifact_dir) / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    schema, buf, shard, total = doc_schema(), [], 0, 0

    def flush():
        nonlocal shard, buf
        table = pa.Table.from_pylist(buf, schema=schema)
        pq.write_table(table, docs / f"part-{shard:05d}.parquet")
        shard, buf = shard + 1, []

    for rec in records:
        buf.append({c: str(rec.get(c) or "") for c in DOC_COLUMNS})
        total += 1
        if len(buf) >= docs_per_shard:
            flush()
    if buf or shard == 0:  # an empty corpus still yields one (empty) shard so readers see the schema
        flush()
    return total


def read_docs(artifact_dir: str | Path, columns: Iterable[str] = DOC_COLUMNS) -> Iterator[dict]:
    """Stream the documents of a docs artifact in shard order (plain Python, no Ray)."""
    import pyarrow.parquet as pq

    for path in shard_paths(artifact_dir):
        table = pq.read_table(path, columns=list(columns))
        yield from table.to_pylist()


def docs_dataset(artifact_dir: str | Path, rows_per_block: int, columns: Iterable[str] = DOC_COLUMNS):
    """A Ray Dataset of a docs artifact, cut into blocks of ``rows_per_block`` rows (one task each).

    The shards are read here, on the driver, and handed to the object store: an artifact lives
    on the driver's disk, which a multi-node cluster's workers cannot see, and for corpora of
    this scale it skips ``read_parquet``'s file-listing and reader actors (~10 s on 2 cores).
    """
    import pyarrow.parquet as pq
    import ray.data

    blocks = []
    for path in shard_paths(artifact_dir):
        table = pq.read_table(path, columns=list(columns))
        blocks.extend(table.slice(i, rows_per_block) for i in range(0, table.num_rows, rows_per_block))
    return ray.data.from_arrow(blocks or [pq.read_table(shard_paths(artifact_dir)[0], columns=list(columns))])


@contextmanager
def ordered_execution(shuffle_strategy: str | None = None):
    """Ray Data settings for deterministic artifacts (order preserved), restored on exit."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    saved = (ctx.execution_options.preserve_order, ctx.shuffle_strategy)
    ctx.execution_options.preserve_order = True
    if shuffle_strategy is not None:
        ctx.shuffle_strategy = ray.data.context.ShuffleStrategy(shuffle_strategy)
    try:
        yield ctx
    finally:
        ctx.execution_options.preserve_order, ctx.shuffle_strategy = saved
