"""A docs artifact as a Ray Dataset, and the Ray Data settings that keep artifacts deterministic.

The layout itself (``docs/part-*.parquet``), its reader and its writer are ``components.artifacts.Docs``.
"""
from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager

from components.artifacts import Docs


def docs_dataset(docs: Docs, rows_per_block: int, columns: Iterable[str] = Docs.COLUMNS):
    """A Ray Dataset of a docs artifact, cut into blocks of ``rows_per_block`` rows (one task each).

    The shards are read here, on the driver, and handed to the object store: an artifact lives
    on the driver's disk, which a multi-node cluster's workers cannot see, and for corpora of
    this scale it skips ``read_parquet``'s file-listing and reader actors (~10 s on 2 cores).
    """
    import pyarrow.parquet as pq
    import ray.data

    blocks = []
    for path in docs.shards:
        table = pq.read_table(path, columns=list(columns))
        blocks.extend(table.slice(i, rows_per_block) for i in range(0, table.num_rows, rows_per_block))
    return ray.data.from_arrow(blocks or [pq.read_table(docs.shards[0], columns=list(columns))])


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
