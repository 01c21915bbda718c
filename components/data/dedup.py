"""Exact + near-duplicate (MinHash LSH) dedup, in plain Python and on Ray Data.

Both paths share one idea: each document emits bucket keys (its exact-text hash, and one key
per LSH band); documents sharing a key are joined by an edge; connected components of the edge
graph are the duplicate clusters; the smallest id of a cluster survives (deterministic,
independent of partitioning). On Ray Data the keys come from ``map_batches`` and the buckets
from ``groupby(...).map_groups``; the edges (few: only buckets with 2+ members emit any) are
gathered to the driver for union-find, as DataTrove's clustering stage also runs in one task.

Python API, no Ray needed::

    from components.data.dedup import find_duplicate_clusters
    clusters = find_duplicate_clusters([{"id": "a", "text": ...}, ...])
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from components.data.minhash import MinHasher, exact_key, shingles

EXACT, NEAR = "exact", "near"


@dataclass
class DuplicateCluster:
    survivor: str
    members: list[str]              # sorted, survivor included
    kind: str                       # "exact" when every link is an exact match, else "near"
    duplicates: list[str] = field(default_factory=list)  # members other than the survivor

    def to_dict(self) -> dict:
        return {"survivor": self.survivor, "kind": self.kind, "size": len(self.members), "members": self.members}


class UnionFind:
    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        parent = self.parent
        root = parent.setdefault(x, x)
        while root != parent[root]:
            root = parent[root]
        while x != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # the smaller id becomes the root, so a root is always its component's minimum
            if rb < ra:
                ra, rb = rb, ra
            self.parent[rb] = ra


def bucket_rows(doc_id: str, text: str, hasher: MinHasher | None, ngram: int, exact: bool) -> list[tuple[int, str, str]]:
    """(bucket key, id, kind) for one document: its exact key and its LSH band keys."""
    rows = []
    if exact:
        rows.append((exact_key(text), doc_id, EXACT))
    if hasher is not None:
        sh = shingles(text, ngram)
        if len(sh):  # a document without words has no meaningful signature
            rows.extend((k, doc_id, NEAR) for k in hasher.band_keys(hasher.signature(sh)))
    return rows


def star_edges(ids: list[str]) -> list[tuple[str, str]]:
    """Edges that connect a bucket's members: all to the smallest id (a star keeps edges linear)."""
    uniq = sorted(set(ids))
    return [(uniq[0], other) for other in uniq[1:]]


def clusters_from_edges(edges) -> list[DuplicateCluster]:
    """Connected components of (src, dst, kind) edges, largest first then by survivor id.

    A cluster is "exact" when every pair joined by a near (LSH) edge is also joined by an exact
    edge: exact copies share all band buckets too, which must not make them "near".
    """
    uf = UnionFind()
    exact_pairs, near_pairs = set(), set()
    for src, dst, kind in edges:
        uf.union(src, dst)
        (exact_pairs if kind == EXACT else near_pairs).add((src, dst))
    members: dict[str, list[str]] = defaultdict(list)
    for x in list(uf.parent):
        members[uf.find(x)].append(x)
    near_roots = {uf.find(s) for s, t in near_pairs - exact_pairs}
    out = []
    for root, ms in members.items():
        ms.sort()
        kind = NEAR if root in near_roots else EXACT
        out.append(DuplicateCluster(survivor=ms[0], members=ms, kind=kind, duplicates=ms[1:]))
    out.sort(key=lambda c: (-len(c.members), c.survivor))
    return out


def find_duplicate_clusters(docs: list[dict], ngram: int = 5, num_bands: int = 14, rows_per_band: int = 8,
                            seed: int = 1, exact: bool = True, near: bool = True) -> list[DuplicateCluster]:
    """Duplicate clusters (2+ members) among ``docs`` (dicts with ``id`` and ``text``); no Ray needed."""
    ids = [str(d["id"]) for d in docs]
    if len(set(ids)) != len(ids):
        raise ValueError("find_duplicate_clusters: document ids must be unique; give each doc a distinct 'id'")
    hasher = MinHasher(num_bands, rows_per_band, seed) if near else None
    buckets: dict[tuple[int, str], list[str]] = defaultdict(list)
    for doc_id, d in zip(ids, docs):
        for key, _, kind in bucket_rows(doc_id, d["text"], hasher, ngram, exact):
            buckets[(key, kind)].append(doc_id)
    edges = [(s, t, kind) for (_, kind), members in buckets.items() if len(members) > 1
             for s, t in star_edges(members)]
    return clusters_from_edges(edges)
