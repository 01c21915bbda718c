"""Exact + MinHash near-dup detection through the plain-Python API (no Ray)."""
from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest

from components.data.dedup import (
    UnionFind,
    candidate_pairs,
    choose_representatives,
    find_duplicate_clusters,
    shingle_jaccard,
)
from components.data.minhash import MinHasher, estimated_jaccard, shingles


def _word_ngrams(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _jaccard(a: str, b: str) -> float:
    sa, sb = _word_ngrams(a), _word_ngrams(b)
    return len(sa & sb) / len(sa | sb)


def _corpus(seed: int = 0, num_pairs: int = 120, num_words: int = 200):
    """Base docs of random words, each with one variant made by replacing k words.

    k is drawn from {1..4} (true 5-gram Jaccard ~0.8-1.0) or {14..40} (Jaccard < 0.5); the true
    Jaccard of every pair is computed, not assumed.
    """
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(20_000)]
    docs, fresh = [], iter(range(10**9))
    for p in range(num_pairs):
        words = [rng.choice(vocab) for _ in range(num_words)]
        k = rng.choice([1, 2, 3, 4]) if p % 2 == 0 else rng.randint(14, 40)
        variant = list(words)
        for pos in rng.sample(range(num_words), k):
            variant[pos] = f"new{next(fresh)}"
        docs.append({"id": f"p{p:03d}a", "text": " ".join(words)})
        docs.append({"id": f"p{p:03d}b", "text": " ".join(variant)})
    return docs


def test_near_dup_precision_and_recall_at_jaccard_0_8():
    """P and R >= 0.9 for pairs with Jaccard >= 0.8 against pairs below 0.5.

    Pairs between 0.5 and 0.8 (LSH's transition band around its 0.72 threshold) are neither
    positives nor negatives; the generator makes few of them.
    """
    docs = _corpus()
    by_id = {d["id"]: d["text"] for d in docs}
    clusters = find_duplicate_clusters(docs)
    predicted = {tuple(sorted((a, b))) for c in clusters for i, a in enumerate(c.members) for b in c.members[i + 1:]}
    ids = sorted(by_id)
    pairs = {}  # every pair of the corpus worth labelling: the planted ones plus all predicted ones
    for p in range(len(ids) // 2):
        pairs[(f"p{p:03d}a", f"p{p:03d}b")] = None
    for pair in predicted:
        pairs[pair] = None
    sims = {pair: _jaccard(by_id[pair[0]], by_id[pair[1]]) for pair in pairs}
    positives = {p for p, s in sims.items() if s >= 0.8}
    negatives = {p for p, s in sims.items() if s < 0.5}
    assert len(positives) >= 40 and len(negatives) >= 40, "the generator must produce both kinds"
    tp = len(predicted & positives)
    recall = tp / len(positives)
    precision = tp / max(1, len(predicted & (positives | negatives)))
    assert recall >= 0.9, f"recall {recall:.3f}"
    assert precision >= 0.9, f"precision {precision:.3f}"


def test_exact_duplicates_form_exact_clusters_with_smallest_id_surviving():
    text = "The quick brown fox jumps over the lazy dog near the river bank today."
    docs = [{"id": "c", "text": text}, {"id": "a", "text": text.upper() + "  "}, {"id": "b", "text": "other text"}]
    clusters = find_duplicate_clusters(docs)
    assert len(clusters) == 1
    assert clusters[0].kind == "exact" and clusters[0].survivor == "a" and clusters[0].members == ["a", "c"]
    assert clusters[0].duplicates == ["c"]


def test_survivor_does_not_depend_on_input_order():
    docs = _corpus(seed=1, num_pairs=30)
    a = find_duplicate_clusters(docs)
    b = find_duplicate_clusters(list(reversed(docs)))
    assert [(c.survivor, c.members) for c in a] == [(c.survivor, c.members) for c in b]
    assert a, "the corpus has planted near duplicates"


def test_exact_only_misses_near_duplicates():
    docs = _corpus(seed=2, num_pairs=10)
    assert find_duplicate_clusters(docs, near=False) == []


def test_duplicate_ids_are_rejected():
    with pytest.raises(ValueError, match="unique"):
        find_duplicate_clusters([{"id": "x", "text": "a"}, {"id": "x", "text": "b"}])


def test_signature_estimates_jaccard():
    docs = _corpus(seed=3, num_pairs=20)
    hasher = MinHasher(14, 8, seed=1)
    errors = []
    for i in range(0, len(docs), 2):
        a, b = docs[i]["text"], docs[i + 1]["text"]
        est = estimated_jaccard(hasher.signature(shingles(a, 5)), hasher.signature(shingles(b, 5)))
        errors.append(abs(est - _jaccard(a, b)))
    assert np.mean(errors) < 0.06, f"mean |estimate - true| = {np.mean(errors):.3f} with 112 permutations"


def test_representatives_break_chains_at_the_threshold():
    # a~b and b~c verified, a-c not an edge: b goes (to a), c stays; x~y exact.
    edges = [("b", "c", 0.85, "near"), ("a", "b", 0.9, "near")]
    assert choose_representatives(["a", "b", "c"], edges) == {"b": ("a", 0.9, "near")}
    # d is close to both kept a and kept c: it goes to the more similar one
    edges += [("a", "d", 0.81, "near"), ("c", "d", 0.95, "near")]
    assert choose_representatives(["a", "b", "c", "d"], edges)["d"] == ("c", 0.95, "near")
    uf = UnionFind()
    uf.union("z", "m")
    assert uf.find("z") == "m"


def test_candidate_pairs_are_star_plus_chain():
    assert candidate_pairs(["d", "b", "a", "c", "b"]) == [("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("c", "d")]


def _mutate(words: list[str], k: int, rng: random.Random, tag: str) -> list[str]:
    out = list(words)
    for pos in rng.sample(range(len(words)), k):
        out[pos] = f"{tag}{pos}"
    return out


def chain_docs(seed: int = 5) -> list[dict]:
    """A ~ B ~ C with A !~ C at 0.8 (true 5-gram Jaccard computed, not assumed), D an exact copy of C."""
    rng = random.Random(seed)
    a = [f"w{rng.randrange(50_000)}" for _ in range(200)]
    b = _mutate(a, 3, rng, "b")
    c = _mutate(b, 3, rng, "c")
    texts = {"A": a, "B": b, "C": c, "D": c}
    return [{"id": k, "text": " ".join(v)} for k, v in texts.items()]


def test_transitive_chain_keeps_the_far_end():
    docs = chain_docs()
    t = {d["id"]: d["text"] for d in docs}
    assert _jaccard(t["A"], t["B"]) >= 0.8 and _jaccard(t["B"], t["C"]) >= 0.8 and _jaccard(t["A"], t["C"]) < 0.8
    clusters = find_duplicate_clusters(docs)
    removed = {d: (c.survivor, c.similarity[d]) for c in clusters for d in c.duplicates}
    assert set(removed) == {"B", "D"}, "C resembles no kept document closely enough: it must stay"
    assert removed["B"][0] == "A" and removed["D"] == ("C", 1.0)
    assert removed["B"][1] == pytest.approx(_jaccard(t["A"], t["B"]), abs=0.02)


def test_no_removed_document_is_below_threshold_of_its_survivor():
    """Planted near-duplicates of known Jaccard around the threshold (0.6-0.95), many chained."""
    rng = random.Random(7)
    docs = []
    for g in range(40):
        words = [f"w{rng.randrange(50_000)}" for _ in range(200)]
        prev = words
        for v in range(4):  # each variant mutates the previous one: chains drift below the threshold
            prev = _mutate(prev, rng.choice([1, 2, 3, 5, 8]), rng, f"g{g}v{v}x")
            docs.append({"id": f"g{g:02d}v{v}", "text": " ".join(prev)})
        docs.append({"id": f"g{g:02d}", "text": " ".join(words)})
    t = {d["id"]: d["text"] for d in docs}
    clusters = find_duplicate_clusters(docs)
    checked = 0
    for c in clusters:
        for d in c.duplicates:
            true = _jaccard(t[c.survivor], t[d])
            assert true >= 0.8, f"{d} removed for {c.survivor} at true Jaccard {true:.3f}"
            assert c.similarity[d] == pytest.approx(true, abs=0.02)  # hashed shingles vs word tuples
            checked += 1
    assert checked >= 40
    kept = set(t) - {d for c in clusters for d in c.duplicates}
    # the kept set is clean: no two kept documents of a group are near-duplicates that LSH could see
    for g in range(40):
        group = sorted(k for k in kept if k.startswith(f"g{g:02d}"))
        for i, x in enumerate(group):
            for y in group[i + 1:]:
                assert _jaccard(t[x], t[y]) < 0.9, f"{x} and {y} both kept at Jaccard {_jaccard(t[x], t[y]):.3f}"


def test_shingle_jaccard_is_exact():
    a, b = np.array([1, 2, 3, 4], np.uint32), np.array([3, 4, 5], np.uint32)
    assert shingle_jaccard(a, b) == pytest.approx(2 / 5) and shingle_jaccard(a, a[:0]) == 0.0


def test_signature_uses_the_mersenne_modulus_exactly():
    """The division-free modulo must give the textbook ((a*x + b) mod (2^61 - 1)) mod 2^32 minimum."""
    h = MinHasher(num_bands=3, rows_per_band=2, seed=7)
    x = np.array([0, 1, 2**32 - 1, 123456789, 2**31 + 5], dtype=np.uint64)
    expected = [min(((int(a) * int(v) + int(b)) % (2**61 - 1)) & 0xFFFFFFFF for v in x)
                for a, b in zip(h.a, h.b)]
    assert h.signature(x).tolist() == expected


def _group_docs(seed: int) -> list[dict]:
    """Chained near-duplicates and exact copies in groups, as in the threshold test above."""
    rng = random.Random(seed)
    docs = []
    for g in range(12):
        words = [f"w{rng.randrange(50_000)}" for _ in range(120)]
        docs.append({"id": f"g{g:02d}", "text": " ".join(words)})
        for v in range(g % 4 + 1):
            words = _mutate(words, rng.choice([1, 2, 3]), rng, f"g{g}v{v}x")
            docs.append({"id": f"g{g:02d}v{v}", "text": " ".join(words)})
        docs.append({"id": f"g{g:02d}copy", "text": docs[-1]["text"]})
    return docs


class _Store:
    """Stands in for Ray's object store in tests: refs with ``hex`` and a ``ray.get`` over them."""

    def __init__(self, monkeypatch):
        import ray

        self.objects = {}
        monkeypatch.setattr(ray, "get", lambda r: [self.objects[x.key] for x in r] if isinstance(r, list)
                            else self.objects[r.key])

    def put(self, value):
        store = self

        class Ref:
            key = str(len(store.objects))

            def hex(self):
                return self.key

        store.objects[Ref.key] = value
        return Ref()


@pytest.mark.parametrize("num_parts", [1, 3])
def test_task_stages_give_the_python_api_edges_and_clusters(monkeypatch, num_parts):
    """Keys, pairs and verification as the Ray tasks run them (blocks of uneven size, an empty
    partition as a table without columns), then the decisions: the plain-Python clusters, and every
    edge is exact (similarity 1.0) or a verified Jaccard >= the threshold."""
    import pyarrow as pa

    import components.data.dedup_ray as dr
    from components.data.config import DedupConfig
    from components.data.shards import ROW

    store = _Store(monkeypatch)
    docs = _group_docs(11)
    config = DedupConfig(num_partitions=num_parts)
    sizes = [5, 17, 1, len(docs) - 23]
    blocks, start = [], 0
    for n in sizes:
        part = docs[start: start + n]
        blocks.append(pa.table({"id": [d["id"] for d in part], "text": [d["text"] for d in part],
                                ROW: pa.array(range(start, start + n), pa.int64())}))
        start += n
    key_outs = [dr.keys_block(b, config.model_dump_json()) for b in blocks]
    pair_outs = [dr.pairs_partition(p, num_parts, pa.table({}), *(k[0] for k in key_outs)) for p in range(num_parts)]
    pair_outs = [[po] if num_parts == 1 else po for po in pair_outs]
    shingle_refs = [store.put(k[1]) for k in key_outs]
    block_starts = np.cumsum([0, *sizes])[:-1]
    edges = [dr.verify_partition(config.threshold, block_starts, shingle_refs, *(po[p] for po in pair_outs))
             for p in range(num_parts)]
    texts = {d["id"]: d["text"] for d in docs}
    seen = set()
    for t in edges:
        for a, b, sim, kind, ra, rb in zip(*(t.column(c).to_pylist() for c in dr.EDGE_TYPES)):
            assert (a, b) not in seen and docs[ra]["id"] == a and docs[rb]["id"] == b
            seen.add((a, b))
            exact_sim = shingle_jaccard(shingles(texts[a], 5), shingles(texts[b], 5))
            assert (kind, sim) == ("exact", 1.0) or (kind == "near" and sim == exact_sim >= 0.8)
    assert any(k == "near" for t in edges for k in t.column("kind").to_pylist())
    edge_refs = [store.put(t) for t in edges]
    parent = dr.component_parents(edge_refs, len(docs))
    chunks = [[store.put(t) for t in dr.decide_partition(edge_refs, [store.put(parent)], p, num_parts, 2)]
              for p in range(num_parts)]
    assert [line for _, _, line in dr.sorted_report_rows(chunks)] == \
        [json.dumps(c.to_dict()) for c in find_duplicate_clusters(docs)]


def test_removed_index_skips_empty_partitions(monkeypatch):
    """Empty partitions can arrive as tables without columns; the writers' removed index ignores them."""
    import pyarrow as pa

    import components.data.dedup_ray as dr

    store = _Store(monkeypatch)
    monkeypatch.setattr(dr, "_CACHE", {})
    refs = [store.put(pa.table({"removed_ids": [["x", "v"]], "removed_kinds": [["near", "exact"]]})),
            store.put(pa.table({}))]
    assert dr.removed_kinds(refs) == {"x": "near", "v": "exact"}


def test_array_union_find_roots_are_component_minima_in_any_edge_order():
    import components.data.dedup_ray as dr

    rng = np.random.default_rng(0)
    n = 2000
    a, b = rng.integers(0, n, 1500), rng.integers(0, n, 1500)
    a = np.concatenate([a, np.arange(100, 600)])  # one long chain as well
    b = np.concatenate([b, np.arange(101, 601)])
    uf = UnionFind()
    for x, y in zip(a.tolist(), b.tolist()):
        uf.union(f"{x:05d}", f"{y:05d}")
    expected = np.array([int(uf.find(f"{i:05d}")) for i in range(n)])
    for perm in (np.arange(len(a)), rng.permutation(len(a))):
        parent = np.arange(n, dtype=np.int32)
        for chunk in np.array_split(perm, 7):  # edges arrive block by block
            dr.union_edges(parent, a[chunk].astype(np.int32), b[chunk].astype(np.int32))
        while not np.array_equal(parent[parent], parent):
            parent = parent[parent]
        assert np.array_equal(parent, expected)


def test_partitioned_decisions_merge_into_the_python_api_clusters(monkeypatch):
    """Edges split over blocks and decided in 1 or 3 partitions give the plain-Python clusters, in order."""
    import pyarrow as pa

    import components.data.dedup_ray as dr

    docs = _group_docs(11)
    expected = [json.dumps(c.to_dict()) for c in find_duplicate_clusters(docs)]
    row = {d["id"]: i for i, d in enumerate(docs)}
    edges = []
    for c in find_duplicate_clusters(docs):  # the verified edges, as the Ray stages produce them
        for d in c.duplicates:
            edges.append((c.survivor, d, c.similarity[d], "exact" if c.similarity[d] == 1.0 else "near"))
    store = _Store(monkeypatch)
    blocks = [store.put(pa.table({"a": [e[0] for e in chunk], "b": [e[1] for e in chunk],
                                  "sim": [e[2] for e in chunk], "kind": [e[3] for e in chunk],
                                  "ra": [row[e[0]] for e in chunk], "rb": [row[e[1]] for e in chunk]}))
              for chunk in (edges[::2], edges[1::2])]
    blocks.append(store.put(pa.table({})))
    parent = dr.component_parents(blocks, len(docs))
    for parts in (1, 3):
        chunks = [[store.put(t) for t in dr.decide_partition(blocks, [store.put(parent)], p, parts, chunk_rows=2)]
                  for p in range(parts)]
        assert [line for _, _, line in dr.sorted_report_rows(chunks)] == expected


def test_exact_normalisation_collapses_every_unicode_space_like_the_regex():
    """normalize_for_exact splits with str.split(): the same as collapsing regex \\s+ and stripping."""
    import sys
    import unicodedata

    from components.data.minhash import normalize_for_exact

    spaces = "".join(chr(c) for c in range(sys.maxunicode + 1) if re.fullmatch(r"\s", chr(c)))
    assert spaces == "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
    rng = random.Random(3)
    for _ in range(2000):
        text = "".join(rng.choice(spaces + "aB ÉﬁX") for _ in range(rng.randrange(30)))
        folded = unicodedata.normalize("NFKC", text).casefold()
        assert normalize_for_exact(text) == re.sub(r"\s+", " ", folded).strip()
