"""Real text chunks and their all-MiniLM-L6-v2 embeddings for benchmarks/rag_search.py, cached on disk.

    flock /tmp/llmflow-heavy.lock .venv/bin/python benchmarks/rag_corpus.py --num-chunks 100000

The corpus is this machine's own documentation: /usr/share/doc (READMEs, changelogs, NEWS,
copyright files, gzip or plain) and /usr/share/man (troff markup stripped), ~41M words. Texts are cut into ~``--chunk-words``
word chunks; exact duplicates (licence texts repeat across packages) are dropped; the order is a
seeded shuffle, so the first N of a larger run are the N of a smaller one. Embedding is the slow
part: the chunks fill MiniLM's 256-token window (254 tokens on average), ~15 chunks/s in fp32 on
2 shared cores, ~27 with ``--bf16`` (weights in bf16, AMX; cosine >= 0.9998 to the fp32 vectors,
checked at start). It runs in batches appended to ``--cache`` (``chunks.jsonl``
+ ``emb-*.npy``), so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

_TROFF = re.compile(r"\\f[BIRP]|\\\(..|\\[-e&|^]|\\s[+-]?\d")


def _read(path: Path) -> str:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError):
        return ""
    if b"\0" in raw[:4096]:
        return ""  # binary
    return raw.decode("utf-8", errors="ignore")


def doc_texts():
    for path in sorted(Path("/usr/share/doc").rglob("*")):
        if path.is_file() and path.stat().st_size < 2_000_000:
            yield _read(path)
    for path in sorted(Path("/usr/share/man").rglob("*.gz")):
        text = _read(path)
        yield "\n".join(_TROFF.sub("", line) for line in text.splitlines() if not line.startswith((".", "'\\\"")))


def chunks(chunk_words: int, needed: int, seed: int) -> list[str]:
    seen, out = set(), []
    for text in doc_texts():
        words = text.split()
        for i in range(0, len(words), chunk_words):
            piece = " ".join(words[i:i + chunk_words])
            if len(piece.split()) < chunk_words // 3:
                continue
            key = hashlib.blake2b(piece.encode(), digest_size=8).digest()
            if key not in seen:
                seen.add(key)
                out.append(piece)
    random.Random(seed).shuffle(out)
    if len(out) < needed:
        raise SystemExit(f"only {len(out)} distinct chunks on this machine, {needed} asked for")
    return out[:needed]


def load(cache: Path, n: int) -> tuple[list[str], np.ndarray]:
    """The first ``n`` cached chunks and their embeddings (fails if fewer are cached)."""
    texts = [json.loads(line) for line in (cache / "chunks.jsonl").read_text().splitlines()[:n]]
    parts = sorted(cache.glob("emb-*.npy"), key=lambda p: int(p.stem.split("-")[1]))
    vecs = np.concatenate([np.load(p) for p in parts])[:n] if parts else np.zeros((0, 384), np.float32)
    if len(vecs) < n:
        raise SystemExit(f"{cache} holds {len(vecs)} embedded chunks, {n} asked for: run benchmarks/rag_corpus.py "
                         f"--num-chunks {n}")
    return texts, vecs


def bf16_check(embedder, texts: list[str], cache: Path, done: int, n: int = 256) -> None:
    """Print how close the bf16 embedder embeds the first cached (fp32) chunks."""
    if done < n:
        print("no fp32 embeddings cached to check bf16 against", flush=True)
        return
    _, ref = load(cache, n)
    cos = (embedder.embed(texts[:n]) * ref).sum(1)  # both unit-norm float32
    print(f"bf16 vs cached fp32 embeddings, {n} chunks: cosine min {cos.min():.5f}, mean {cos.mean():.5f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-chunks", type=int, default=100_000)
    ap.add_argument("--chunk-words", type=int, default=90, help="~128 MiniLM tokens, rag.index's chunk size")
    ap.add_argument("--cache", type=Path, default=Path("/work/cache-edge/corpus"))
    ap.add_argument("--batch", type=int, default=2048, help="chunks per saved embedding file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bf16", action="store_true",
                    help="bf16 weights (AMX/AVX512-bf16 CPUs: ~4x faster); first checks them against the fp32 cache")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    chunk_file = args.cache / "chunks.jsonl"
    if not chunk_file.exists() or len(chunk_file.read_text().splitlines()) < args.num_chunks:
        t0 = time.perf_counter()
        texts = chunks(args.chunk_words, args.num_chunks, args.seed)
        chunk_file.write_text("".join(json.dumps(t) + "\n" for t in texts))
        print(f"{len(texts)} chunks in {time.perf_counter() - t0:.0f} s", flush=True)
    texts = [json.loads(line) for line in chunk_file.read_text().splitlines()[:args.num_chunks]]

    from components.rag.embed import Embedder

    # explicit: the cache is fp32 unless --bf16 (Embedder's own default follows the CPU)
    embedder = Embedder(batch_size=64, dtype="bf16" if args.bf16 else "fp32")
    done = sum(len(np.load(p, mmap_mode="r")) for p in args.cache.glob("emb-*.npy"))
    if args.bf16:
        bf16_check(embedder, texts, args.cache, done)
    t0, start = time.perf_counter(), done
    while done < len(texts):
        part = texts[done:done + args.batch]
        tmp = args.cache / f"emb-{done}.partial"
        with tmp.open("wb") as f:  # unit-norm float32 either dtype
            np.save(f, embedder.embed(part))
        tmp.replace(args.cache / f"emb-{done}.npy")  # a kill mid-write leaves no truncated emb-*.npy
        done += len(part)
        rate = (done - start) / (time.perf_counter() - t0)
        print(f"embedded {done}/{len(texts)} ({rate:.0f} chunks/s)", flush=True)


if __name__ == "__main__":
    main()
