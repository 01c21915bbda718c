"""Cleaning throughput: our filters vs DataTrove's, same documents, same published thresholds, one process.

    .venv/bin/python benchmarks/data_clean.py --repeats 3

Both sides run Gopher repetition + Gopher quality + C4 + FineWeb (DataTrove's order and its
default thresholds; our C4 in its published line-removal mode) over the non-empty stdlib docs
in one process on one core, so docs/s is per core. DataTrove needs ``pip install datatrove
spacy`` (benchmark only: its English word tokenizer is spaCy's). Also printed: how often the
two sides agree on keep/drop, and our full default chain (+ language id + PII) for reference.
"""
from __future__ import annotations

import argparse
import statistics
import time


def load_docs() -> list[str]:
    from components.data.stdlib_corpus import stdlib_documents

    return [d["text"] for d in stdlib_documents() if d["text"].strip()]


def ours_published():
    from components.data.filters.c4 import C4Quality
    from components.data.filters.fineweb import FineWebQuality
    from components.data.filters.gopher_quality import GopherQuality
    from components.data.filters.gopher_repetition import GopherRepetition

    return [GopherRepetition(dup_n_grams=((5, .15), (6, .14), (7, .13), (8, .12), (9, .11), (10, .10))),
            GopherQuality(min_alpha_words_ratio=0.8), C4Quality(), FineWebQuality(char_duplicates_ratio=0.01)]


def run_ours(docs, filters) -> list[bool]:
    from components.data.clean import clean_text

    return [clean_text(t, filters)[1] == "" for t in docs]


def run_datatrove(docs) -> list[bool]:
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    filters = [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter()]
    keep = []
    for i, text in enumerate(docs):
        doc, ok = Document(text=text, id=str(i)), True
        for f in filters:
            r = f.filter(doc)
            if not (r is True or (isinstance(r, tuple) and r[0])):
                ok = False
                break
        keep.append(ok)
    return keep


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from components.data.clean import build_filters
    from components.data.config import CleanConfig

    docs = load_docs()
    mb = sum(len(t.encode()) for t in docs) / 1e6
    ours_f, default_f = ours_published(), build_filters(CleanConfig())
    run_datatrove(docs[:5])  # warm-up: spaCy's tokenizer loads lazily
    run_ours(docs[:5], default_f)  # warm-up: py3langid's model
    t_ours, t_dt, t_def = [], [], []
    for _ in range(args.repeats):  # interleaved, so load drift hits both sides alike
        dt, keep_ours = timed(run_ours, docs, ours_f)
        t_ours.append(dt)
        dt, keep_dt = timed(run_datatrove, docs)
        t_dt.append(dt)
        dt, keep_def = timed(run_ours, docs, default_f)
        t_def.append(dt)
    agree = sum(a == b for a, b in zip(keep_ours, keep_dt)) / len(docs)

    def row(name, ts, kept):
        med = statistics.median(ts)
        spread = (max(ts) - min(ts)) / med
        print(f"| {name:42s} | {len(docs) / med:9.1f} | {mb / med:6.2f} | {spread * 100:5.1f}% | {sum(kept) / len(docs):5.3f} |")
        return len(docs) / med

    print(f"{len(docs)} docs, {mb:.2f} MB, {args.repeats} repeats, 1 process")
    print("| pipeline                                   | docs/s    | MB/s   | spread | kept  |")
    print("|---|---|---|---|---|")
    ours = row("ours: 4 filters, published thresholds", t_ours, keep_ours)
    base = row("DataTrove: same 4 filters, defaults", t_dt, keep_dt)
    row("ours: default chain (+langid, PII, tuned)", t_def, keep_def)
    print(f"ratio ours/DataTrove = {ours / base:.1f}x per core; keep/drop agreement {agree:.3f}")


if __name__ == "__main__":
    main()
