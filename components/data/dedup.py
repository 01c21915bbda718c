"""Exact + near-duplicate (MinHash LSH) dedup with verified candidates, in plain Python and on Ray Data.

Both paths share the same four ideas:

1. **Candidates.** Each document emits bucket keys (its exact-text hash, one key per LSH band);
   documents sharing a key are candidate pairs: each member with the bucket's smallest id and
   with its predecessor in id order (linear in the bucket size, not quadratic).
2. **Verification.** A near candidate becomes an edge only when the exact Jaccard of the two
   documents' word-shingle sets is at least ``threshold``; an exact candidate (same normalised
   text) is an edge with similarity 1.0. LSH is only a filter: it never removes anything.
3. **Components** of the verified edges group what must be decided together.
4. **Representatives.** Inside a component, documents are taken in id order; one is kept unless
   it has a verified edge to an already kept document, in which case it is removed and assigned
   to the most similar such document (the lexicographically first maximal independent set).
   So every removed document is a verified near-duplicate of a kept one: in a chain A≈B≈C with
   A≉C, B goes and C stays. The result does not depend on input order or partitioning.

Python API, no Ray needed::

    from components.data.dedup import find_duplicate_clusters
    clusters = find_duplicate_clusters([{"id": "a", "text": ...}, ...])
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from components.data.minhash import MinHasher, exact_key, shingles

EXACT, NEAR = "exact", "near"


@dataclass
class DuplicateCluster:
    """A kept document and the documents removed as its duplicates (each with its similarity to it)."""

    survivor: str
    members: list[str]              # sorted, survivor included
    kind: str                       # "exact" when every removed member is an exact copy, else "near"
    duplicates: list[str] = field(default_factory=list)  # members other than the survivor
    similarity: dict[str, float] = field(default_factory=dict)  # removed id -> shingle Jaccard to survivor

    def to_dict(self) -> dict:
        return {"survivor": self.survivor, "kind": self.kind, "size": len(self.members), "members": self.members,
                "similarity": {d: round(self.similarity[d], 4) for d in self.duplicates}}


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


def bucket_keys(text: str, hasher: MinHasher | None, ngram: int, exact: bool
                ) -> tuple[list[tuple[int, str]], np.ndarray | None]:
    """(bucket key, kind) pairs of one document (its exact key, its LSH band keys) and its shingles
    (``None`` without ``hasher``), so that verification can reuse them instead of shingling again."""
    keys, sh = [], None
    if exact:
        keys.append((exact_key(text), EXACT))
    if hasher is not None:
        sh = shingles(text, ngram)
        if len(sh):  # a document without words has no meaningful signature
            keys.extend((k, NEAR) for k in hasher.band_keys(hasher.signature(sh)))
    return keys, sh


def bucket_rows(doc_id: str, text: str, hasher: MinHasher | None, ngram: int, exact: bool) -> list[tuple[int, str, str]]:
    """(bucket key, id, kind) for one document: its exact key and its LSH band keys."""
    return [(key, doc_id, kind) for key, kind in bucket_keys(text, hasher, ngram, exact)[0]]


def candidate_pairs(ids: list[str]) -> list[tuple[str, str]]:
    """Pairs (a < b) to verify in one bucket: every member with the smallest and with its predecessor.

    All pairs would be quadratic (a bucket of 10,000 copies of a licence); the star alone would
    miss B≈C when the smallest A resembles neither.
    """
    uniq = sorted(set(ids))
    pairs = {(uniq[0], other) for other in uniq[1:]}
    pairs.update(zip(uniq[1:-1], uniq[2:]))
    return sorted(pairs)


def shingle_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard of two sets of unique shingle hashes (``minhash.shingles`` output)."""
    if not len(a) or not len(b):
        return 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def choose_representatives(nodes: list[str], edges: list[tuple[str, str, float, str]]
                           ) -> dict[str, tuple[str, float, str]]:
    """Removed id -> (kept representative, similarity, kind) for one component's verified edges.

    Greedy in id order: a node with a verified edge to a kept node is removed (assigned to the
    most similar kept neighbour, the smaller id on ties); otherwise it is kept.
    """
    neighbours: dict[str, list[tuple[str, float, str]]] = defaultdict(list)
    for a, b, sim, kind in edges:
        neighbours[a].append((b, sim, kind))
        neighbours[b].append((a, sim, kind))
    kept: set[str] = set()
    removed: dict[str, tuple[str, float, str]] = {}
    for node in sorted(set(nodes)):
        links = [(n, s, k) for n, s, k in neighbours[node] if n in kept]
        if links:
            rep, sim, kind = min(links, key=lambda x: (-x[1], x[0]))
            removed[node] = (rep, sim, kind)
        else:
            kept.add(node)
    return removed


def clusters_from_decisions(removed: dict[str, tuple[str, float, str]]) -> list[DuplicateCluster]:
    """Clusters (one per kept representative with duplicates), largest first then by survivor id."""
    by_rep: dict[str, list[str]] = defaultdict(list)
    for doc_id, (rep, _, _) in removed.items():
        by_rep[rep].append(doc_id)
    out = []
    for rep, dups in by_rep.items():
        dups.sort()
        kind = EXACT if all(removed[d][2] == EXACT for d in dups) else NEAR
        out.append(DuplicateCluster(survivor=rep, members=sorted([rep, *dups]), kind=kind, duplicates=dups,
                                    similarity={d: removed[d][1] for d in dups}))
    out.sort(key=lambda c: (-len(c.members), c.survivor))
    return out


def find_duplicate_clusters(docs: list[dict], ngram: int = 5, num_bands: int = 14, rows_per_band: int = 8,
                            seed: int = 1, exact: bool = True, near: bool = True,
                            threshold: float = 0.8) -> list[DuplicateCluster]:
    """Duplicate clusters (2+ members) among ``docs`` (dicts with ``id`` and ``text``); no Ray needed."""
    ids = [str(d["id"]) for d in docs]
    if len(set(ids)) != len(ids):
        raise ValueError("find_duplicate_clusters: document ids must be unique; give each doc a distinct 'id'")
    texts = dict(zip(ids, (d["text"] for d in docs)))
    hasher = MinHasher(num_bands, rows_per_band, seed) if near else None
    buckets: dict[tuple[int, str], list[str]] = defaultdict(list)
    for doc_id, text in texts.items():
        for key, _, kind in bucket_rows(doc_id, text, hasher, ngram, exact):
            buckets[(key, kind)].append(doc_id)
    exact_pairs, near_pairs = set(), set()
    for (_, kind), members in buckets.items():
        if len(members) > 1:
            (exact_pairs if kind == EXACT else near_pairs).update(candidate_pairs(members))
    edges = [(a, b, 1.0, EXACT) for a, b in sorted(exact_pairs)]
    cache: dict[str, np.ndarray] = {}

    def sh(doc_id):
        if doc_id not in cache:
            cache[doc_id] = shingles(texts[doc_id], ngram)
        return cache[doc_id]

    for a, b in sorted(near_pairs - exact_pairs):
        sim = shingle_jaccard(sh(a), sh(b))
        if sim >= threshold:
            edges.append((a, b, sim, NEAR))
    uf = UnionFind()
    for a, b, _, _ in edges:
        uf.union(a, b)
    components: dict[str, list] = defaultdict(list)
    for edge in edges:
        components[uf.find(edge[0])].append(edge)
    removed = {}
    for comp_edges in components.values():
        removed.update(choose_representatives([n for e in comp_edges for n in e[:2]], comp_edges))
    return clusters_from_decisions(removed)
