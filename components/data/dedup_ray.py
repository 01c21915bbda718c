"""Verified dedup with plain Ray tasks over the docs' blocks; no stage gathers documents, pairs or edges on the driver.

The stages of ``components.data.dedup``, each a wave of plain Ray tasks (``num_partitions`` = P):

1. keys, one task per docs block: each document's exact key and LSH band keys (bucket, kind, id,
   row), plus the block's shingles (row, uint32 bytes) kept in the object store for stage 3, so no
   document is shingled twice.
2. candidate pairs, P tasks: task p takes the buckets of partition p (bucket modulo P) from every
   keys table, sorts them by (bucket, kind) and pairs the members of each bucket
   (``candidate_pairs``); the pairs go out in P tables by the row of their ``a``, so every
   proposal of one pair (from several bands) meets in one verification task.
                                                              -> (a, b, kind, ra, rb)
3. verification, P tasks: exact pairs (same normalised text) are edges of similarity 1.0; each
   other pair is an edge when the exact Jaccard of the two documents' shingles is at least the
   threshold. A task reads the shingle blocks it needs one at a time and keeps only its pairs'
   documents' shingles.                                       -> edges (a, b, sim, kind, ra, rb)
4. connected components by union-find on the driver over the documents' row numbers
   (``ROW``: 0..N-1), streaming the edges one block at a time. It holds one int per document
   (4 bytes up to 2^31 documents: 400 MB for 100 million) plus one block of edges, never the edges
   as a whole nor any text, and its result (root = the component's smallest row) does not depend
   on the order in which the blocks arrive.
5. representatives and report rows: P tasks, each taking the components whose root falls in its
   partition (it reads the edge blocks one at a time and the broadcast parent array) and
   yielding its report rows sorted, in chunks.
6. the driver merges the partitions' sorted chunks (one chunk per partition held at a time):
   clusters.jsonl, largest cluster first.

Why plain tasks: on Ray Data the same stages were a map, a sort-shuffle groupby for the buckets, a
map that shingled the candidates again and a second groupby for verification, each job with its own
sample/map/reduce waves and scheduling; on 2 cores that machinery, not the MinHash arithmetic (~25 s
of CPU for the 100 MB benchmark corpus), was most of the wall time. A task's output order is fixed by its inputs (sorted
inside each task), so the result does not depend on how many workers ran or when they finished.

The largest pieces of memory in one place are, on a worker, one partition's keys, pairs or edges and
the shingles of one partition's candidate documents; in the object store until verification ends,
the keys (~600 bytes per document) and shingles (about 4 bytes per word) of every document. The
driver holds object refs, the union-find's int array and one block of edges or report rows at a time.
"""
from __future__ import annotations

import json
from itertools import pairwise

import numpy as np

from components.data.config import DedupConfig
from components.data.dedup import (
    EXACT,
    NEAR,
    MinHasher,
    bucket_keys,
    candidate_pairs,
    choose_representatives,
    clusters_from_decisions,
    shingle_jaccard,
)
from components.data.shards import ROW

KEY_TYPES = {"bucket": "int64", "near": "int8", "id": "string", "row": "int64"}
SHINGLE_TYPES = {"row": "int64", "shingles": "binary"}
PAIR_TYPES = {"a": "string", "b": "string", "kind": "string", "ra": "int64", "rb": "int64"}
EDGE_TYPES = {"a": "string", "b": "string", "sim": "float64", "kind": "string", "ra": "int64", "rb": "int64"}


def _table(columns: dict[str, list], types: dict[str, str]):
    import pyarrow as pa

    return pa.table({c: pa.array(columns[c], getattr(pa, t)()) for c, t in types.items()})


def _nonempty(table) -> bool:
    return table.num_rows > 0  # an empty partition may come as a table without columns


def _concat(tables: tuple, types: dict[str, str]):
    import pyarrow as pa

    tables = [t for t in tables if _nonempty(t)]
    return pa.concat_tables(tables) if tables else _table({c: [] for c in types}, types)


def _split(table, part: np.ndarray, num_parts: int) -> list:
    """``table``'s rows in ``num_parts`` tables by ``part`` (order kept inside each)."""
    return [table.filter(part == p) for p in range(num_parts)]


def _returns(tables: list):
    return tables[0] if len(tables) == 1 else tuple(tables)  # a task with num_returns=1 returns the value itself


# -- 1: keys and shingles --------------------------------------------------------------------
def keys_block(block, config_json: str):
    """One docs block's bucket keys table and its shingles table.

    One keys table per block, not one per partition: a task's return under 100 KiB is kept in its
    owner's (the driver's) memory, and per-partition tables of a fixed-size block stay that small
    however large the corpus, so the driver would hold every key; the block's whole table (~600
    bytes per document) goes to the object store, and each pairs task takes its buckets from it."""
    config = DedupConfig.model_validate_json(config_json)
    hasher = MinHasher(config.num_bands, config.rows_per_band, config.seed) if config.near else None
    out = {c: [] for c in KEY_TYPES}
    sh_out = {c: [] for c in SHINGLE_TYPES}
    if _nonempty(block):
        for doc_id, text, row in zip(*(block.column(c).to_pylist() for c in ("id", "text", ROW))):
            keys, sh = bucket_keys(text or "", hasher, config.ngram, config.exact)
            for key, kind in keys:
                out["bucket"].append(key)
                out["near"].append(int(kind == NEAR))
                out["id"].append(doc_id)
                out["row"].append(row)
            if sh is not None and len(sh):
                sh_out["row"].append(row)
                sh_out["shingles"].append(sh.astype(np.uint32).tobytes())
    return _table(out, KEY_TYPES), _table(sh_out, SHINGLE_TYPES)


# -- 2: candidate pairs ----------------------------------------------------------------------
def pairs_partition(part: int, num_parts: int, *key_tables):
    """Candidate pairs of the buckets of partition ``part`` (bucket modulo ``num_parts``; none for a
    singleton bucket, the common case), in ``num_parts`` tables by ``ra``."""
    t = _concat([k.filter(k.column("bucket").to_numpy() % num_parts == part) for k in key_tables if _nonempty(k)],
                KEY_TYPES)
    bucket, near = t.column("bucket").to_numpy(), t.column("near").to_numpy()
    order = np.lexsort((near, bucket))
    bucket, near = bucket[order], near[order]
    starts = np.flatnonzero(np.r_[True, (bucket[1:] != bucket[:-1]) | (near[1:] != near[:-1])])
    sizes = np.diff(np.r_[starts, len(bucket)])
    out = {c: [] for c in PAIR_TYPES}
    multi = np.flatnonzero(sizes > 1)
    if len(multi):
        ids, rows = t.column("id").to_pylist(), t.column("row").to_pylist()
        for g in multi.tolist():
            members = order[starts[g]: starts[g] + sizes[g]].tolist()
            row_of = {ids[i]: rows[i] for i in members}
            kind = NEAR if near[starts[g]] else EXACT
            for a, b in candidate_pairs([ids[i] for i in members]):
                for c, v in zip(PAIR_TYPES, (a, b, kind, row_of[a], row_of[b])):
                    out[c].append(v)
    pairs = _table(out, PAIR_TYPES)
    return _returns(_split(pairs, pairs.column("ra").to_numpy() % num_parts, num_parts))


# -- 3: verification -------------------------------------------------------------------------
def gather_shingles(rows: np.ndarray, block_starts: np.ndarray, shingle_refs: list) -> dict[int, np.ndarray]:
    """row -> its shingles, for the given rows, reading each shingle block they fall in once, one at a time."""
    import ray

    out: dict[int, np.ndarray] = {}
    blocks = np.searchsorted(block_starts, rows, side="right") - 1
    for j in np.unique(blocks).tolist():
        table = ray.get(shingle_refs[j])
        if _nonempty(table):
            have = table.column("row").to_numpy()
            want = rows[blocks == j]
            at = np.searchsorted(have, want)
            found = (at < len(have)) & (have[np.minimum(at, len(have) - 1)] == want)
            column = table.column("shingles")
            for r, i in zip(want[found].tolist(), at[found].tolist()):
                out[r] = np.frombuffer(column[i].as_py(), dtype=np.uint32)  # as_py copies: the block can go
        del table
    return out


def verify_partition(threshold: float, block_starts: np.ndarray, shingle_refs: list, *pair_tables):
    """The edges among one partition's candidate pairs: exact pairs with similarity 1.0, near pairs
    whose exact shingle Jaccard is at least ``threshold`` (a pair some bucket also proposes as exact
    is an exact edge, not verified). Every pair once, sorted."""
    t = _concat(pair_tables, PAIR_TYPES)
    exact, near = set(), set()
    for a, b, kind, ra, rb in zip(*(t.column(c).to_pylist() for c in PAIR_TYPES)):
        (exact if kind == EXACT else near).add((a, b, ra, rb))
    near -= exact
    out = {c: [] for c in EDGE_TYPES}

    def add(edge):
        for c, v in zip(EDGE_TYPES, edge):
            out[c].append(v)

    for a, b, ra, rb in sorted(exact):
        add((a, b, 1.0, EXACT, ra, rb))
    if near:
        needed = np.unique(np.array([r for p in near for r in p[2:]], dtype=np.int64))
        sh = gather_shingles(needed, block_starts, shingle_refs)
        none = np.empty(0, dtype=np.uint32)
        for a, b, ra, rb in sorted(near):
            sim = shingle_jaccard(sh.get(rb, none), sh.get(ra, none))
            if sim >= threshold:
                add((a, b, float(sim), NEAR, ra, rb))
    return _table(out, EDGE_TYPES)


def verified_edges(block_refs: list, block_rows: list[int], config: DedupConfig) -> list:
    """Object refs of the verified edges (stages 1-3), one table per partition."""
    import ray

    num_parts = config.num_partitions
    keys = ray.remote(keys_block).options(num_returns=2)
    key_outs = [keys.remote(ref, config.model_dump_json()) for ref in block_refs]
    pairs = ray.remote(pairs_partition).options(num_returns=num_parts)
    pair_outs = [pairs.remote(p, num_parts, *(k[0] for k in key_outs)) for p in range(num_parts)]
    if num_parts == 1:
        pair_outs = [[ref] for ref in pair_outs]
    block_starts = np.cumsum([0, *block_rows])[:-1]
    shingle_refs = [k[1] for k in key_outs]  # inside a list: passed as refs, fetched when needed
    verify = ray.remote(verify_partition)
    return [verify.remote(config.threshold, block_starts, shingle_refs, *(po[p] for po in pair_outs))
            for p in range(num_parts)]


# -- 4: connected components -----------------------------------------------------------------
def _roots(parent: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Roots of the nodes ``x``, compressing their paths."""
    r = x
    while True:
        up = parent[r]
        if np.array_equal(up, r):
            parent[x] = r
            return r
        r = up


def union_edges(parent: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """Join the components of each pair (a[i], b[i]); every root is its component's smallest node.

    Vectorised: each pass hooks the larger root of each unjoined pair under the smallest root it
    is paired with (``minimum.at``: conflicting hooks keep the smallest); pairs whose roots still
    differ go to the next pass, which joins at least one more pair of components.
    """
    while len(a):
        ra, rb = _roots(parent, a), _roots(parent, b)
        todo = ra != rb
        if not todo.any():
            return
        ra, rb = ra[todo], rb[todo]
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        a, b = a[todo], b[todo]


def component_parents(edge_refs: list, num_rows: int) -> np.ndarray:
    """parent[row] = the smallest row of its component, from the edges behind ``edge_refs``,
    fetched one block at a time (the driver holds the int array and one block, see the module doc)."""
    import ray

    parent = np.arange(num_rows, dtype=np.int32 if num_rows < 2**31 else np.int64)
    for ref in edge_refs:
        table = ray.get(ref)
        if _nonempty(table):
            union_edges(parent, table.column("ra").to_numpy().astype(parent.dtype),
                        table.column("rb").to_numpy().astype(parent.dtype))
        del table
    while True:  # full compression: every node points at its root
        up = parent[parent]
        if np.array_equal(up, parent):
            return parent
        parent = up


# -- 5-6: representatives and report rows ----------------------------------------------------
CLUSTER_TYPES = {"neg_size": "int64", "survivor": "string", "kind": "string", "min_sim": "float64",
                 "json": "string"}


def cluster_rows(edges: list[tuple[str, str, float, str]]) -> list[tuple]:
    """Report rows of one component: one per kept representative with its removed duplicates (each a
    verified duplicate of it, with the similarity), as ``clusters_from_decisions`` writes them."""
    removed = choose_representatives([n for e in edges for n in e[:2]], edges)
    rows = []
    for c in clusters_from_decisions(removed):
        row = c.to_dict()
        rows.append((-row["size"], c.survivor, c.kind, min(c.similarity.values()), json.dumps(row),
                     c.duplicates, [removed[d][2] for d in c.duplicates]))
    return rows


def _rows_table(rows: list[tuple]):
    import pyarrow as pa

    cols = list(zip(*rows)) if rows else [[] for _ in range(7)]
    table = _table(dict(zip(CLUSTER_TYPES, cols)), CLUSTER_TYPES)
    table = table.append_column("removed_ids", pa.array(cols[5], pa.list_(pa.string())))
    return table.append_column("removed_kinds", pa.array(cols[6], pa.list_(pa.string())))


def decide_partition(edge_refs: list, parent_refs: list, part: int, num_parts: int, chunk_rows: int):
    """Report rows of the components whose root row is ``part`` modulo ``num_parts``, sorted largest
    cluster first, yielded in tables of ``chunk_rows`` rows (a Ray generator task).

    The edge blocks are read one at a time and only this partition's edges are kept, so a task
    holds its share of the edges, never all of them; the parent array says each edge's component.
    """
    import pyarrow as pa
    import ray

    parent = ray.get(parent_refs[0])
    mine = []
    for ref in edge_refs:
        t = ray.get(ref)
        if _nonempty(t):
            label = parent[t.column("ra").to_numpy()].astype(np.int64)
            keep = label % num_parts == part
            if keep.any():
                mine.append(t.filter(keep).append_column("label", pa.array(label[keep])))
        del t
    rows = []
    if mine:
        t = pa.concat_tables(mine).sort_by([("label", "ascending"), ("a", "ascending"), ("b", "ascending")])
        labels = t.column("label").to_numpy()
        edges = list(zip(*(t.column(c).to_pylist() for c in ("a", "b", "sim", "kind"))))
        starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]]).tolist() + [len(labels)]
        for lo, hi in pairwise(starts):
            rows.extend(cluster_rows(edges[lo:hi]))
    rows.sort(key=lambda r: (r[0], r[1]))
    for start in range(0, max(len(rows), 1), chunk_rows):
        yield _rows_table(rows[start:start + chunk_rows])


def decide(edge_refs: list, parent_refs: list, config: DedupConfig, chunk_rows: int = 1024) -> list[list]:
    """Per partition, the object refs of its sorted report-row chunks (``num_partitions`` tasks)."""
    import ray

    task = ray.remote(decide_partition).options(num_returns="streaming")
    gens = [task.remote(edge_refs, parent_refs, p, config.num_partitions, chunk_rows)
            for p in range(config.num_partitions)]  # all started before any is waited for
    return [list(g) for g in gens]


def sorted_report_rows(chunk_refs: list[list]):
    """(kind, min_sim, json) of every report row, largest cluster first, merged from the sorted
    partitions one chunk each at a time (the driver holds ``num_partitions`` chunks)."""
    import heapq

    import ray

    def rows(refs):
        for ref in refs:
            t = ray.get(ref)
            yield from zip(*(t.column(c).to_pylist() for c in ("neg_size", "survivor", "kind", "min_sim", "json")))

    for _, _, kind, sim, line in heapq.merge(*(rows(r) for r in chunk_refs), key=lambda r: (r[0], r[1])):
        yield kind, sim, line


# -- the writers' broadcast index (built once per worker process from object refs) ------------
_CACHE: dict[tuple, object] = {}


def _cached(name: str, refs: list, build):
    """``build(tables)`` over the Arrow tables behind ``refs``, once per worker process."""
    import ray

    key = (name, tuple(r.hex() for r in refs))
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = build([t for t in ray.get(list(refs)) if _nonempty(t)])
    return _CACHE[key]


def removed_kinds(refs: list) -> dict[str, str]:
    """Removed id -> kind ("exact"/"near") over the report rows behind ``refs`` (on the workers)."""
    def build(tables):
        out: dict[str, str] = {}
        for t in tables:
            for ids, kinds in zip(t.column("removed_ids").to_pylist(), t.column("removed_kinds").to_pylist()):
                out.update(zip(ids, kinds))
        return out

    return _cached("removed", refs, build)


def dedup_removals(block_refs: list, block_rows: list[int], config: DedupConfig) -> list[list] | None:
    """Report rows (one per kept representative with duplicates; the removed ids and kinds in list
    columns) as ``decide`` returns them: per partition, sorted chunk refs (merge them with
    ``sorted_report_rows``); ``None`` when nothing is a duplicate.

    ``block_refs`` and ``block_rows`` are ``docs_blocks(..., row_numbers=True)``: blocks with ``id``,
    ``text`` and ``ROW`` columns, and their sizes.
    """
    import ray

    edge_refs = verified_edges(block_refs, block_rows, config)
    num_rows = sum(block_rows)
    parent = component_parents(edge_refs, num_rows)
    if np.array_equal(parent, np.arange(num_rows)):
        return None  # no edge: every edge joins two different documents
    return decide(edge_refs, [ray.put(parent)], config)
