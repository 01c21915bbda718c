"""MinHash near-dup throughput and agreement: ours vs datasketch, same documents, one process.

    .venv/bin/python benchmarks/data_minhash.py --repeats 3

Input: the non-empty stdlib docs plus, for a third of them, a near copy with ~2% of words
replaced and an exact copy of another third (known duplicate pairs). Both sides use word
5-gram shingles, 112 permutations, LSH 14 bands x 8 rows. datasketch (``pip install
datasketch``, benchmark only) builds a MinHash per doc with ``update_batch`` and queries a
``MinHashLSH``; ours is ``find_duplicate_clusters`` (the plain-Python API; the Ray step runs the
same code in ``map_batches``). Agreement = Jaccard of the two sets of duplicate pairs; recall is
over the planted pairs.
"""
from __future__ import annotations

import argparse
import random
import re
import statistics
import time


def make_docs(seed: int = 0) -> tuple[list[dict], set[tuple[str, str]]]:
    from components.data.stdlib_corpus import stdlib_documents

    rng = random.Random(seed)
    base = [d for d in stdlib_documents() if len(d["text"].split()) >= 50]
    docs = [{"id": d["id"], "text": d["text"]} for d in base]
    planted = set()
    for i, d in enumerate(base):
        if i % 3 == 0:
            words = d["text"].split()
            for pos in rng.sample(range(len(words)), max(1, len(words) // 50)):
                words[pos] = f"edit{rng.randrange(10**9)}"
            docs.append({"id": d["id"] + "~near", "text": " ".join(words)})
            planted.add(tuple(sorted((d["id"], d["id"] + "~near"))))
        elif i % 3 == 1:
            docs.append({"id": d["id"] + "~copy", "text": d["text"]})
            planted.add(tuple(sorted((d["id"], d["id"] + "~copy"))))
    return docs, planted


def pairs_of(clusters) -> set[tuple[str, str]]:
    return {tuple(sorted((a, b))) for c in clusters for i, a in enumerate(c) for b in c[i + 1:]}


def run_ours(docs):
    from components.data.dedup import find_duplicate_clusters

    return [c.members for c in find_duplicate_clusters(docs, exact=False)]


def run_datasketch(docs):
    from datasketch import MinHash, MinHashLSH

    from components.data.dedup import UnionFind

    lsh = MinHashLSH(num_perm=112, params=(14, 8))
    uf = UnionFind()
    for d in docs:
        words = re.findall(r"\w+", d["text"].lower())
        grams = {" ".join(words[i:i + 5]).encode() for i in range(max(1, len(words) - 4))}
        m = MinHash(num_perm=112, seed=1)
        m.update_batch(list(grams))
        for other in lsh.query(m):
            uf.union(other, d["id"])
        lsh.insert(d["id"], m)
    groups: dict[str, list[str]] = {}
    for x in list(uf.parent):
        groups.setdefault(uf.find(x), []).append(x)
    return [sorted(g) for g in groups.values() if len(g) > 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    docs, planted = make_docs()
    mb = sum(len(d["text"].encode()) for d in docs) / 1e6
    times = {"ours": [], "datasketch": []}
    results = {}
    for _ in range(args.repeats):
        for name, fn in (("ours", run_ours), ("datasketch", run_datasketch)):
            t = time.perf_counter()
            results[name] = fn(docs)
            times[name].append(time.perf_counter() - t)
    p_ours, p_ds = pairs_of(results["ours"]), pairs_of(results["datasketch"])
    agreement = len(p_ours & p_ds) / max(1, len(p_ours | p_ds))
    print(f"{len(docs)} docs, {mb:.2f} MB, {len(planted)} planted pairs, {args.repeats} repeats, 1 process")
    print("| side | docs/s | MB/s | spread | pairs found | planted recall |")
    print("|---|---|---|---|---|---|")
    rate = {}
    for name, pairs in (("ours", p_ours), ("datasketch", p_ds)):
        med = statistics.median(times[name])
        rate[name] = len(docs) / med
        spread = (max(times[name]) - min(times[name])) / med
        print(f"| {name} | {rate[name]:.0f} | {mb / med:.2f} | {spread * 100:.1f}% | {len(pairs)} | "
              f"{len(pairs & planted) / len(planted):.3f} |")
    print(f"ratio ours/datasketch = {rate['ours'] / rate['datasketch']:.2f}x; duplicate-pair agreement "
          f"(Jaccard of pair sets) = {agreement:.3f}")


if __name__ == "__main__":
    main()
