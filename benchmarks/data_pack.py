"""Tokenize-and-pack throughput: the tokenize.pack step (Ray Data) vs a bare ``tokenizers`` loop.

    .venv/bin/python benchmarks/data_pack.py --repeats 3 --copies 5

Corpus: the non-empty stdlib docs repeated ``--copies`` times (distinct ids), as a docs
artifact; tokenizer: a 4096-entry byte-level BPE trained on them. Baseline: one process,
``Tokenizer.encode_batch_fast`` over the texts (its Rust thread pool uses every core), EOS appended,
concatenated into one numpy array. Ours: ``run_pack`` end to end on a warm local Ray (4
logical CPUs, as the flow runs it): read shards, encode in ``map_batches``, pack, write
``.bin`` shards + manifest. Both measured in the same run, interleaved; tokens/s counts every
token produced (ours: packed + dropped tail).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# this checkout's code, not whatever the venv's editable install points at
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--copies", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()

    import ray
    from tokenizers import Tokenizer

    from components.artifacts import Docs
    from components.data.stdlib_corpus import stdlib_documents
    from components.tokenize.bpe import EOS, train_bpe_tokenizer
    from components.tokenize.config import PackConfig
    from components.tokenize.steps import run_pack
    from flows.engine.context import StepContext

    root = Path(tempfile.mkdtemp(prefix="bench_pack_"))
    base = [d for d in stdlib_documents() if d["text"].strip()]
    docs = [{**d, "id": f"{c}/{d['id']}"} for c in range(args.copies) for d in base]
    Docs.write(docs, root / "docs")
    texts = [d["text"] for d in docs]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    train_bpe_tokenizer((d["text"] for d in base), 4096, root / "tok")
    tok = Tokenizer.from_file(str(root / "tok" / "tokenizer.json"))
    eos = tok.token_to_id(EOS)

    def bare() -> int:
        encs = tok.encode_batch_fast(texts, add_special_tokens=False)
        stream = np.concatenate([np.asarray(e.ids + [eos], dtype=np.uint16) for e in encs])
        return len(stream)

    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}})
    ray.data.DataContext.get_current().enable_progress_bars = False
    cfg = PackConfig(seq_len=256, val_fraction=0.05, batch_size=args.batch_size)

    def ours(i: int) -> int:
        ctx = StepContext.for_test(root / f"pack{i}", {"docs": root / "docs", "tokenizer": root / "tok"})
        m = run_pack(ctx, cfg)
        return int(m["num_train_tokens"] + m["num_val_tokens"] + m["num_dropped_tail_tokens"])

    ours(-1)  # warm-up: worker processes start and import tokenizers once
    t_ours, t_bare = [], []
    for i in range(args.repeats):
        t = time.perf_counter()
        n_ours = ours(i)
        t_ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        n_bare = bare()
        t_bare.append(time.perf_counter() - t)
    ray.shutdown()
    assert n_ours == n_bare, f"token counts differ: ours {n_ours} vs bare {n_bare}"
    print(f"{len(texts)} docs, {mb:.2f} MB, {n_bare} tokens, {args.repeats} repeats, cores={os.cpu_count()}")
    print("| side | tokens/s | MB/s | spread |")
    print("|---|---|---|---|")
    rate = {}
    for name, ts in (("ours: tokenize.pack on Ray Data", t_ours), ("bare tokenizers encode_batch_fast", t_bare)):
        med = statistics.median(ts)
        rate[name] = n_bare / med
        print(f"| {name} | {rate[name]:,.0f} | {mb / med:.2f} | {(max(ts) - min(ts)) / med * 100:.1f}% |")
    r = rate["ours: tokenize.pack on Ray Data"] / rate["bare tokenizers encode_batch_fast"]
    print(f"ratio ours/bare = {r:.2f}x")


if __name__ == "__main__":
    main()
