"""Token shards for training tests, built here so these tests do not depend on tokenize.pack.

The layout matches the `tokenize.pack` artifact exactly: manifest.json + train/*.bin +
val/*.bin (raw uint16 memmaps of shape (num_blocks, seq_len)) + a tokenizer/ copy.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest


def make_token_shards(texts: list[str], tokenizer_dir: Path, out: Path, seq_len: int = 64,
                      val_every: int = 20, blocks_per_shard: int = 512) -> Path:
    """Tokenize ``texts`` (EOS-separated), cut into blocks; every ``val_every``-th document goes to val."""
    from transformers import AutoTokenizer

    from components.artifacts import Tokens
    from components.tokenize.bpe import tokenizer_sha256

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    streams: dict[str, list[int]] = {"train": [], "val": []}
    for i, text in enumerate(texts):
        split = "val" if i % val_every == val_every - 1 else "train"
        streams[split].extend(tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
    shards = {}
    for split, ids in streams.items():
        blocks = np.asarray(ids[: len(ids) // seq_len * seq_len], dtype=np.uint16).reshape(-1, seq_len)
        shards[split] = [blocks[start:start + blocks_per_shard] for start in range(0, len(blocks), blocks_per_shard)]
    shutil.copytree(tokenizer_dir, out / Tokens.TOKENIZER_DIR)
    Tokens.write_blocks(out, shards, vocab_size=len(tok), tokenizer_sha256=tokenizer_sha256(out / Tokens.TOKENIZER_DIR),
                        eos_token_id=tok.eos_token_id)
    return out


@pytest.fixture(scope="session")
def tokens_dir(tmp_path_factory, stdlib_texts, tiny_tokenizer_dir) -> Path:
    return make_token_shards(stdlib_texts, tiny_tokenizer_dir, tmp_path_factory.mktemp("tokens"), seq_len=64)
