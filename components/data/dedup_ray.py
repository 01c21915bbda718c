"""Dedup on Ray Data: bucket keys in ``map_batches``, buckets by ``groupby``, components on the driver."""
from __future__ import annotations

from components.data.config import DedupConfig
from components.data.dedup import (
    DuplicateCluster,
    MinHasher,
    bucket_rows,
    clusters_from_edges,
    star_edges,
)


def bucket_batch(batch, config_json: str):
    """(bucket, kind, id) rows for a batch of documents: one exact key + one key per LSH band each."""
    import pyarrow as pa

    config = DedupConfig.model_validate_json(config_json)
    hasher = MinHasher(config.num_bands, config.rows_per_band, config.seed) if config.near else None
    keys, kinds, ids = [], [], []
    for doc_id, text in zip(batch.column("id").to_pylist(), batch.column("text").to_pylist()):
        for key, _, kind in bucket_rows(doc_id, text or "", hasher, config.ngram, config.exact):
            keys.append(key)
            kinds.append(kind)
            ids.append(doc_id)
    return pa.table({"bucket": pa.array(keys, pa.int64()), "kind": pa.array(kinds, pa.string()),
                     "id": pa.array(ids, pa.string())})


def bucket_edges(group):
    """Edges joining one bucket's members (none for a singleton bucket, the common case)."""
    import pyarrow as pa

    ids = group.column("id").to_pylist()
    edges = star_edges(ids) if len(ids) > 1 else []
    kind = group.column("kind")[0].as_py() if edges else ""
    return pa.table({"src": pa.array([s for s, _ in edges], pa.string()),
                     "dst": pa.array([t for _, t in edges], pa.string()),
                     "kind": pa.array([kind] * len(edges), pa.string())})


def dedup_clusters(ds, config: DedupConfig) -> list[DuplicateCluster]:
    """Duplicate clusters of a Ray Dataset with ``id`` and ``text`` columns."""
    keys = ds.select_columns(["id", "text"]).map_batches(
        bucket_batch, fn_kwargs={"config_json": config.model_dump_json()}, batch_format="pyarrow",
        batch_size=config.batch_size, zero_copy_batch=True)
    edges = keys.groupby(["bucket", "kind"], num_partitions=config.num_partitions).map_groups(
        bucket_edges, batch_format="pyarrow")
    rows = []
    for batch in edges.iter_batches(batch_format="pyarrow", batch_size=None):
        rows.extend(zip(batch.column("src").to_pylist(), batch.column("dst").to_pylist(),
                        batch.column("kind").to_pylist()))
    return clusters_from_edges(rows)
