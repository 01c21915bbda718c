"""Verified dedup on Ray Data; no stage gathers documents, pairs or edges on the driver.

The stages of ``components.data.dedup``, each a Ray Data map or groupby:

1. bucket keys per document (``map_batches``)                     -> (bucket, kind, id)
2. candidate pairs per bucket (groupby bucket)                    -> (a, b, kind)
3. verification in two hops, keyed by ``a`` then by ``b``: the first sends a's shingles to b,
   the second computes the exact Jaccard next to b's text        -> edges (a, b, sim, kind)
   Only documents named by a candidate pair take part (a broadcast id set filters them).
4. connected components by hash-to-min label propagation: groupby rounds until the state's
   signature stops changing (the driver sees one number per round)
5. representatives per component (groupby component)             -> removed (id, rep, sim, kind)
6. one row per kept representative with duplicates (groupby rep), sorted for the report

The driver holds object refs and counts; the largest piece of memory in one place is one
component, on a worker.
"""
from __future__ import annotations

import json

import numpy as np
import xxhash

from components.data.config import DedupConfig
from components.data.dedup import (
    EXACT,
    NEAR,
    MinHasher,
    bucket_rows,
    candidate_pairs,
    choose_representatives,
    shingle_jaccard,
)
from components.data.minhash import shingles

# One schema for every row that goes through a "join by groupby": a keyed document, pair or edge.
HOP_COLUMNS = ("key", "role", "other", "kind", "text", "payload", "sim")
MAX_CC_ROUNDS = 64


def _hop_table(rows: dict[str, list]):
    import pyarrow as pa

    types = {"key": pa.string(), "role": pa.string(), "other": pa.string(), "kind": pa.string(),
             "text": pa.string(), "payload": pa.binary(), "sim": pa.float64()}
    n = len(rows["key"])
    defaults = {"text": "", "payload": b"", "sim": 0.0, "other": "", "kind": ""}
    return pa.table({c: pa.array(rows.get(c) or [defaults.get(c)] * n, types[c]) for c in HOP_COLUMNS})


def _groupby(ds, key, fn, config: DedupConfig, **fn_kwargs):
    return ds.groupby(key, num_partitions=config.num_partitions).map_groups(
        fn, batch_format="pyarrow", fn_kwargs=fn_kwargs or None)


# -- 1-2: candidates -------------------------------------------------------------------------
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


def bucket_pairs(group):
    """Candidate pairs of one bucket (none for a singleton bucket, the common case)."""
    import pyarrow as pa

    ids = group.column("id").to_pylist()
    pairs = candidate_pairs(ids) if len(ids) > 1 else []
    kind = group.column("kind")[0].as_py() if pairs else ""
    return pa.table({"a": pa.array([a for a, _ in pairs], pa.string()),
                     "b": pa.array([b for _, b in pairs], pa.string()),
                     "kind": pa.array([kind] * len(pairs), pa.string())})


# -- broadcast id sets -----------------------------------------------------------------------
_ID_MAPS: dict[tuple, dict[str, str]] = {}


def id_map(refs: list, value_column: str | None = None, id_columns: tuple[str, ...] | None = None
           ) -> dict[str, str]:
    """id -> value (or "") of the Arrow tables behind ``refs``, loaded once per worker process.

    ``id_columns`` hold ids (default: every column other than ``value_column``). This is how a stage learns
    which documents are candidates or removed without a shuffle of the whole corpus; its size
    is that of the (few) duplicates, and it lives on the workers, never on the driver.
    """
    import ray

    key = (tuple(r.hex() for r in refs), value_column, id_columns)
    if key not in _ID_MAPS:
        _ID_MAPS.clear()
        out: dict[str, str] = {}
        for table in ray.get(list(refs)):
            if table.num_rows == 0:  # an empty shuffle partition may come as a table without columns
                continue
            values = table.column(value_column).to_pylist() if value_column else None
            for col in id_columns or table.column_names:
                if col != value_column:
                    for i, doc_id in enumerate(table.column(col).to_pylist()):
                        out[doc_id] = values[i] if values else ""
        _ID_MAPS[key] = out
    return _ID_MAPS[key]


def arrow_refs(ds) -> list:
    """Object refs of a dataset's blocks as Arrow tables (the data stays in the object store)."""
    return list(ds.to_arrow_refs())


# -- 3: verification -------------------------------------------------------------------------
def candidate_docs(batch, id_refs: list):
    """The batch's documents that appear in a candidate pair (the ``a``/``b`` of ``id_refs``), as keyed rows."""
    ids = id_map(id_refs, id_columns=("a", "b"))
    rows = {"key": [], "role": [], "text": []}
    for doc_id, text in zip(batch.column("id").to_pylist(), batch.column("text").to_pylist()):
        if doc_id in ids:
            rows["key"].append(doc_id)
            rows["role"].append("doc")
            rows["text"].append(text or "")
    return _hop_table(rows)


def pair_rows(batch):
    a, b, kind = (batch.column(c).to_pylist() for c in ("a", "b", "kind"))
    return _hop_table({"key": a, "role": ["pair"] * len(a), "other": b, "kind": kind})


def send_shingles(group, ngram: int):
    """Keyed by a: each pair (a, b) goes to b, as an exact edge or as a probe carrying a's shingles."""
    roles, others, kinds = (group.column(c).to_pylist() for c in ("role", "other", "kind"))
    texts = [t for r, t in zip(roles, group.column("text").to_pylist()) if r == "doc"]
    a = group.column("key")[0].as_py()
    kind_of: dict[str, str] = {}
    for role, other, kind in zip(roles, others, kinds):
        if role == "pair" and kind_of.get(other) != EXACT:  # the same pair may come from several buckets
            kind_of[other] = kind
    rows = {"key": [], "role": [], "other": [], "kind": [], "payload": [], "sim": []}
    if not texts or not kind_of:
        return _hop_table(rows)
    payload = shingles(texts[0], ngram).astype(np.uint32).tobytes()
    for b in sorted(kind_of):
        exact = kind_of[b] == EXACT
        rows["key"].append(b)
        rows["role"].append("edge" if exact else "probe")
        rows["other"].append(a)
        rows["kind"].append(kind_of[b])
        rows["payload"].append(b"" if exact else payload)
        rows["sim"].append(1.0 if exact else 0.0)
    return _hop_table(rows)


def verify(group, ngram: int, threshold: float):
    """Keyed by b: exact Jaccard of b's shingles with each probe; edges (a, b, sim, kind) that pass."""
    import pyarrow as pa

    roles = group.column("role").to_pylist()
    texts = [t for r, t in zip(roles, group.column("text").to_pylist()) if r == "doc"]
    b = group.column("key")[0].as_py()
    out = {"a": [], "b": [], "sim": [], "kind": []}
    own = shingles(texts[0], ngram).astype(np.uint32) if texts else None
    for role, a, kind, payload, sim in zip(roles, *(group.column(c).to_pylist()
                                                    for c in ("other", "kind", "payload", "sim"))):
        if role == "edge":
            pass
        elif role == "probe" and own is not None:
            sim = shingle_jaccard(np.frombuffer(payload, dtype=np.uint32), own)
            if sim < threshold:
                continue
        else:
            continue
        out["a"].append(a)
        out["b"].append(b)
        out["sim"].append(float(sim))
        out["kind"].append(kind)
    return pa.table({"a": pa.array(out["a"], pa.string()), "b": pa.array(out["b"], pa.string()),
                     "sim": pa.array(out["sim"], pa.float64()), "kind": pa.array(out["kind"], pa.string())})


# -- 4: connected components -----------------------------------------------------------------
def cc_init(batch):
    import pyarrow as pa

    a, b = batch.column("a").to_pylist(), batch.column("b").to_pylist()
    return pa.table({"node": pa.array(a + b + a + b, pa.string()), "member": pa.array(a + b + b + a, pa.string()),
                     "state": pa.array([0] * (4 * len(a)), pa.int64())})


def cc_round(group):
    """Hash-to-min: node v with set C sends C to min(C) and min(C) to every member of C.

    At the fixed point the component's minimum holds the whole component and every other node
    holds {minimum}. ``state`` (on the first row) is a hash of this node's input set: the sum
    over nodes is the round's signature, unchanged once nothing moves.
    """
    import pyarrow as pa

    node = group.column("node")[0].as_py()
    members = sorted(set(group.column("member").to_pylist()))
    m = members[0]
    state = xxhash.xxh64_intdigest("\0".join([node, *members]).encode()) % (1 << 31)
    nodes = [m] * len(members) + members
    out_members = members + [m] * len(members)
    return pa.table({"node": pa.array(nodes, pa.string()), "member": pa.array(out_members, pa.string()),
                     "state": pa.array([state] + [0] * (len(nodes) - 1), pa.int64())})


def _block_sum(table, column: str) -> int:
    import pyarrow.compute as pc

    if table.num_rows == 0:  # an empty shuffle partition may come as a table without columns
        return 0
    return int(pc.sum(table.column(column)).as_py() or 0)


def round_signature(ds) -> tuple[int, int]:
    """(sum of ``state``, rows) of a materialized dataset: one small task per block, one int back each.

    ``Dataset.sum`` would plan and run a whole aggregate job per round; this costs a task per block.
    """
    import ray

    block_sum = ray.remote(_block_sum).options(num_cpus=0.25)
    return sum(ray.get([block_sum.remote(ref, "state") for ref in ds.to_arrow_refs()])), ds.count()


def component_labels(edges, config: DedupConfig):
    """(node, member) rows at the hash-to-min fixed point; a node's component is min(member)."""
    state = edges.map_batches(cc_init, batch_format="pyarrow").materialize()
    previous = None
    for _ in range(MAX_CC_ROUNDS):
        out = _groupby(state, "node", cc_round, config).materialize()
        signature = round_signature(out)
        if signature == previous:  # this round's input equals the last one's: converged
            return state
        previous, state = signature, out
    raise RuntimeError(f"data.dedup: connected components did not converge in {MAX_CC_ROUNDS} rounds")


def state_rows(batch):
    node, member = batch.column("node").to_pylist(), batch.column("member").to_pylist()
    return _hop_table({"key": node, "role": ["state"] * len(node), "other": member})


def edge_rows(batch):
    a, b, sim, kind = (batch.column(c).to_pylist() for c in ("a", "b", "sim", "kind"))
    return _hop_table({"key": a, "role": ["edge"] * len(a), "other": b, "kind": kind, "sim": sim})


def label_edges(group):
    """Keyed by node a: its edges (a, b) tagged with the component label (min of a's state set)."""
    import pyarrow as pa

    roles, others = group.column("role").to_pylist(), group.column("other").to_pylist()
    label = min(o for r, o in zip(roles, others) if r == "state")
    a = group.column("key")[0].as_py()
    keep = [i for i, r in enumerate(roles) if r == "edge"]
    sims, kinds = group.column("sim").to_pylist(), group.column("kind").to_pylist()
    return pa.table({"label": pa.array([label] * len(keep), pa.string()), "a": pa.array([a] * len(keep), pa.string()),
                     "b": pa.array([others[i] for i in keep], pa.string()),
                     "sim": pa.array([sims[i] for i in keep], pa.float64()),
                     "kind": pa.array([kinds[i] for i in keep], pa.string())})


# -- 5-6: representatives and clusters -------------------------------------------------------
def decide_component(group):
    """Removed documents of one component, each with its kept representative and similarity."""
    import pyarrow as pa

    edges = list(zip(*(group.column(c).to_pylist() for c in ("a", "b", "sim", "kind"))))
    removed = choose_representatives([n for e in edges for n in e[:2]], edges)
    ids = sorted(removed)
    return pa.table({"id": pa.array(ids, pa.string()), "rep": pa.array([removed[i][0] for i in ids], pa.string()),
                     "sim": pa.array([removed[i][1] for i in ids], pa.float64()),
                     "kind": pa.array([removed[i][2] for i in ids], pa.string())})


def cluster_row(group):
    """One report row per kept representative: its duplicates and their similarity to it."""
    import pyarrow as pa

    order = sorted(range(group.num_rows), key=lambda i: group.column("id")[i].as_py())
    ids = [group.column("id")[i].as_py() for i in order]
    sims = [group.column("sim")[i].as_py() for i in order]
    kinds = {group.column("kind")[i].as_py() for i in order}
    rep = group.column("rep")[0].as_py()
    row = {"survivor": rep, "kind": EXACT if kinds == {EXACT} else NEAR, "size": len(ids) + 1,
           "members": sorted([rep, *ids]), "similarity": {d: round(s, 4) for d, s in zip(ids, sims)}}
    return pa.table({"neg_size": pa.array([-row["size"]], pa.int64()), "survivor": pa.array([rep], pa.string()),
                     "kind": pa.array([row["kind"]], pa.string()),
                     "min_sim": pa.array([min(sims)], pa.float64()),
                     "json": pa.array([json.dumps(row)], pa.string())})


def dedup_removals(ds, config: DedupConfig):
    """(removed, clusters): Datasets of removed documents (id, rep, sim, kind) and of report rows
    sorted largest cluster first; ``None, None`` when nothing is a duplicate.

    ``ds`` has ``id`` and ``text`` columns.
    """
    docs = ds.select_columns(["id", "text"])
    keys = docs.map_batches(bucket_batch, fn_kwargs={"config_json": config.model_dump_json()},
                            batch_format="pyarrow", batch_size=config.batch_size, zero_copy_batch=True)
    pairs = _groupby(keys, ["bucket", "kind"], bucket_pairs, config).materialize()
    if pairs.count() == 0:
        return None, None
    # the materialized pairs' own blocks: select_columns would run another job to copy them
    cand = docs.map_batches(candidate_docs, fn_kwargs={"id_refs": arrow_refs(pairs)},
                            batch_format="pyarrow", batch_size=config.batch_size).materialize()
    probes = _groupby(cand.union(pairs.map_batches(pair_rows, batch_format="pyarrow")), "key", send_shingles,
                      config, ngram=config.ngram)
    edges = _groupby(cand.union(probes), "key", verify, config, ngram=config.ngram,
                     threshold=config.threshold).materialize()
    if edges.count() == 0:
        return None, None
    state = component_labels(edges, config)
    labelled = _groupby(state.map_batches(state_rows, batch_format="pyarrow").union(
        edges.map_batches(edge_rows, batch_format="pyarrow")), "key", label_edges, config)
    removed = _groupby(labelled, "label", decide_component, config).materialize()
    clusters = _groupby(removed, "rep", cluster_row, config).sort(["neg_size", "survivor"]).materialize()
    return removed, clusters
