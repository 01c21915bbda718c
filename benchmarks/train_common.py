"""Helpers shared by the train_* benchmarks (not a benchmark itself): token artifacts to train on.

Both build the `tokenize.pack` layout (manifest.json + train/ + val/ memmaps + tokenizer/),
so the benchmarks exercise exactly the data path the `train.pretrain` step uses.
"""
from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np


def _manifest(out: Path, seq_len: int, vocab_size: int, train: np.ndarray, val: np.ndarray) -> Path:
    from components.artifacts import Tokens
    from components.tokenize.bpe import tokenizer_sha256

    Tokens.write_blocks(out, {"train": [train], "val": [val]}, vocab_size=vocab_size,
                        tokenizer_sha256=tokenizer_sha256(out / Tokens.TOKENIZER_DIR))
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
