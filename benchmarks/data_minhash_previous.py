"""MinHash shingles + signature: this checkout vs a previous checkout's code, same documents.

    nice -n 19 .venv/bin/python benchmarks/data_minhash_previous.py --baseline /tmp/llmflow-ds-base

Asserts the shingles and signatures are identical (a speed change must not move a single bucket),
then prints CPU time per document (``time.process_time``: less sensitive to a loaded machine than
wall time) of each code. Documents: the first 300 of a shard of the data_scale.py corpus, plus
edge cases (empty, one word, non-ASCII ligatures).
"""
from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq


def load(code: str):
    for name in [k for k in sys.modules if k == "components" or k.startswith("components.")]:
        del sys.modules[name]
    sys.path.insert(0, code)
    try:
        import components.data.minhash as mod
    finally:
        sys.path.pop(0)
    assert Path(mod.__file__).is_relative_to(code), mod.__file__
    return mod


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", required=True, help="Checkout of the previous version.")
    ap.add_argument("--corpus", default="/tmp/llmflow-datascale/corpus-100mb")
    ap.add_argument("--docs", type=int, default=300)
    args = ap.parse_args()
    shard = sorted(glob.glob(f"{args.corpus}/docs/*.parquet"))[1]
    texts = pq.read_table(shard, columns=["text"]).column("text").to_pylist()[: args.docs]
    texts += ["", "a", "x y z", "Ünïcode ﬁ test " * 50]
    old, new = load(args.baseline), load(str(Path(__file__).resolve().parents[1]))
    ho, hn = old.MinHasher(), new.MinHasher()
    for t in texts:
        a, b = old.shingles(t, 5), new.shingles(t, 5)
        assert np.array_equal(a, b) and np.array_equal(ho.signature(a), hn.signature(b)), t[:80]
    for name, mod, h in (("baseline", old, ho), ("ours", new, hn)):
        start = time.process_time()
        for t in texts:
            h.signature(mod.shingles(t, 5))
        print(f"{name}: {(time.process_time() - start) * 1000 / len(texts):.3f} ms CPU per document")
    print(f"identical shingles and signatures on {len(texts)} documents")


if __name__ == "__main__":
    main()
