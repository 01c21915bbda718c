"""Helpers shared by the train_* benchmarks (not a benchmark itself): token artifacts to train on.

Both build the `tokenize.pack` layout (manifest.json + train/ + val/ memmaps + tokenizer/),
so the benchmarks exercise exactly the data path the `train.pretrain` step uses.
"""
from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path

import numpy as np


def _write_split(out: Path, split: str, blocks: np.ndarray) -> list[str]:
    (out / split).mkdir(parents=True, exist_ok=True)
    rel = f"{split}/shard-00000.bin"
    mm = np.memmap(out / rel, dtype=blocks.dtype, mode="w+", shape=blocks.shape)
    mm[:] = blocks
    mm.flush()
    return [rel]


def _manifest(out: Path, seq_len: int, vocab_size: int, train: np.ndarray, val: np.ndarray) -> Path:
    manifest = {"seq_len": seq_len, "dtype": train.dtype.name, "vocab_size": vocab_size,
                "train": _write_split(out, "train", train), "val": _write_split(out, "val", val),
                "num_train_blocks": len(train), "num_val_blocks": len(val),
                "num_train_tokens": int(train.size), "num_val_tokens": int(val.size),
                "tokenizer_sha256": hashlib.sha256((out / "tokenizer" / "tokenizer.json").read_bytes()).hexdigest()}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


def stdlib_tokens(out: Path, seq_len: int = 128, vocab_size: int = 2048) -> Path:
    """The stdlib's pydoc topics, BPE-tokenized and packed (the bundled demo corpus)."""
    from pydoc_data.topics import topics

    from transformers import AutoTokenizer

    from components.tokenize.bpe import train_bpe_tokenizer

    out = Path(out)
    if (out / "manifest.json").exists():
        return out
    texts = [topics[k] for k in sorted(topics)]
    train_bpe_tokenizer(texts, vocab_size=vocab_size, out_dir=out / "tokenizer")
    tok = AutoTokenizer.from_pretrained(out / "tokenizer")
    ids: list[int] = []
    for text in texts:
        ids += tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    blocks = np.asarray(ids[: len(ids) // seq_len * seq_len], dtype=np.uint16).reshape(-1, seq_len)
    num_val = max(8, len(blocks) // 50)
    return _manifest(out, seq_len, len(tok), blocks[num_val:], blocks[:num_val])


def random_tokens(out: Path, seq_len: int, num_blocks: int, vocab_size: int = 32000) -> Path:
    """Uniform random tokens (throughput only), with a stdlib tokenizer so the export is complete."""
    out = Path(out)
    if (out / "manifest.json").exists():
        return out
    stdlib_tokens(out / "_stdlib", seq_len=128)
    import shutil
    shutil.copytree(out / "_stdlib" / "tokenizer", out / "tokenizer")
    blocks = np.random.default_rng(0).integers(0, vocab_size, size=(num_blocks, seq_len), dtype=np.uint16)
    return _manifest(out, seq_len, vocab_size, blocks[8:], blocks[:8])


def median_spread(values: list[float]) -> tuple[float, float]:
    """Median and half the min-max range as a fraction of the median (the ± we report)."""
    med = statistics.median(values)
    return med, (max(values) - min(values)) / 2 / med if med else float("nan")
