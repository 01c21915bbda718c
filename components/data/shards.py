"""A docs artifact as a Ray Dataset, the worker-side shard writer, and the settings that keep artifacts deterministic.

The layout itself (``docs/part-*.parquet``), its reader and its writer are ``components.artifacts.Docs``.
Steps that transform documents write their output from the Ray Data workers: every input block
carries its index (``BLOCK`` column), and the worker that processes it writes
``docs/part-<block>.parquet`` itself. The driver only gathers small per-block summaries, so its
memory does not grow with the corpus, and the shard layout depends on the input alone, never on
how many workers ran or in which order they finished.
"""
from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

from components.artifacts import Docs

BLOCK = "_block"  # int64 column: index of the input block a row came from
ROW = "_row"  # int64 column (on request): the row's position in the artifact, a compact document number


def _read_blocks(path: str, columns: list[str], rows_per_block: int, first_index: int, first_row: int | None = None):
    """One shard cut into blocks of ``rows_per_block`` rows, each with its ``BLOCK`` index (a Ray task);
    with ``first_row``, also each row's ``ROW`` number (first_row + its position in the shard)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=columns)
    blocks = []
    for k, start in enumerate(range(0, max(table.num_rows, 1), rows_per_block)):
        block = table.slice(start, rows_per_block)
        block = block.append_column(BLOCK, pa.array([first_index + k] * block.num_rows, pa.int64()))
        if first_row is not None:
            rows = np.arange(first_row + start, first_row + start + block.num_rows, dtype=np.int64)
            block = block.append_column(ROW, pa.array(rows))
        blocks.append(block)
    return tuple(blocks) if len(blocks) > 1 else blocks[0]


def docs_blocks(docs: Docs, rows_per_block: int, columns: Iterable[str] = Docs.COLUMNS,
                row_numbers: bool = False) -> tuple[list, list[int]]:
    """Object refs of a docs artifact's blocks of ``rows_per_block`` rows (each with ``BLOCK``, and
    ``ROW`` with ``row_numbers``) and each block's number of rows, in artifact order.

    One Ray task per shard reads it and returns its blocks straight into the object store; the
    driver reads only the row counts, so its memory does not grow with the corpus. The tasks run
    on the driver's node: an artifact lives on the driver's disk, which other nodes' workers may
    not see. ``ROW`` numbers the documents 0..N-1 in shard order, the same for any number of workers.
    """
    import pyarrow.parquet as pq
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    read = ray.remote(_read_blocks)
    refs, block_rows, index, first_row = [], [], 0, 0
    for path in docs.shards:
        num_rows = pq.ParquetFile(path).metadata.num_rows
        if num_rows == 0 and (refs or path != docs.shards[-1]):
            continue  # an empty shard adds nothing (the last one stands in for an empty artifact)
        n = max(1, -(-num_rows // rows_per_block))
        out = read.options(num_returns=n, scheduling_strategy=here).remote(str(path), list(columns), rows_per_block,
                                                                         index, first_row if row_numbers else None)
        refs.extend(out if n > 1 else [out])
        block_rows.extend(min(rows_per_block, num_rows - k * rows_per_block) for k in range(n))
        index += n
        first_row += num_rows
    return refs, block_rows


def docs_dataset(docs: Docs, rows_per_block: int, columns: Iterable[str] = Docs.COLUMNS, row_numbers: bool = False):
    """A Ray Dataset of a docs artifact in blocks of ``rows_per_block`` rows (one task each), plus ``BLOCK``
    (and ``ROW`` with ``row_numbers``): the blocks of ``docs_blocks``. (Reading them this way also
    skips ``read_parquet``'s file listing, ~10 s on 2 cores.)"""
    import ray.data

    return ray.data.from_arrow_refs(docs_blocks(docs, rows_per_block, columns, row_numbers)[0])


def block_of(batch) -> int:
    """The single input block a batch holds (steps map with ``batch_size=None``: one batch per block)."""
    import pyarrow.compute as pc

    if batch.num_rows == 0:
        return -1
    lo, hi = pc.min_max(batch.column(BLOCK)).values()
    assert lo == hi, f"a batch spans input blocks {lo}..{hi}; map with batch_size=None"
    return lo.as_py()


def write_docs_part(table, out_dir: str, block: int) -> str | None:
    """Write a worker's kept documents as ``docs/part-<block>.parquet``; nothing for an empty block."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if table.num_rows == 0:
        return None
    folder = Path(out_dir) / Docs.FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    empty = pa.array([""] * table.num_rows, pa.string())
    out = pa.table({c: pc.fill_null(table.column(c).cast(pa.string()), "") if c in table.column_names else empty
                    for c in Docs.COLUMNS}, schema=Docs.schema())
    path = folder / f"part-{block:06d}.parquet"
    pq.write_table(out, path)
    return path.name


def writer_node() -> str:
    """The Ray node a writer runs on ("local" outside Ray): each worker's block summary carries it."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


def writer_node_tags(node_ids: Iterable[str], blocks_sent_back: int) -> dict[str, str]:
    """MLflow tags saying which nodes wrote an artifact's shards, from one node id per written block:
    ``llmflow.data.writer_nodes`` (sorted, comma-joined), ``llmflow.data.blocks_by_node`` (JSON) and
    ``llmflow.data.blocks_sent_back`` (blocks whose files came back through the bucket: ``send_back``).
    Tags, not the artifact: the shards must not depend on where they were written."""
    import json
    from collections import Counter

    counts = Counter(node_ids)
    return {"llmflow.data.writer_nodes": ",".join(sorted(counts)),
            "llmflow.data.blocks_by_node": json.dumps(dict(sorted(counts.items()))),
            "llmflow.data.blocks_sent_back": str(blocks_sent_back)}


def ensure_nonempty(out_dir: str | Path) -> None:
    """An artifact with no kept document still gets one empty shard, so readers see the schema."""
    folder = Path(out_dir) / Docs.FOLDER
    if not any(folder.glob("part-*.parquet")):
        Docs.write([], out_dir)


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
