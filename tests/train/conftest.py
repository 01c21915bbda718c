"""Token shards for training tests, built here so these tests do not depend on tokenize.pack.

The layout matches the `tokenize.pack` artifact exactly: manifest.json + train/*.bin +
val/*.bin (raw uint16 memmaps of shape (num_blocks, seq_len)) + a tokenizer/ copy.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest


def make_token_shards(texts: list[str], tokenizer_dir: Path, out: Path, seq_len: int = 64,
                      val_every: int = 20, blocks_per_shard: int = 512) -> Path:
    """Tokenize ``texts`` (EOS-separated), cut into blocks; every ``val_every``-th document goes to val."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    streams: dict[str, list[int]] = {"train": [], "val": []}
    for i, text in enumerate(texts):
        split = "val" if i % val_every == val_every - 1 else "train"
        streams[split].extend(tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
    manifest: dict = {"seq_len": seq_len, "dtype": "uint16", "vocab_size": len(tok)}
    for split, ids in streams.items():
        blocks = np.asarray(ids[: len(ids) // seq_len * seq_len], dtype=np.uint16).reshape(-1, seq_len)
        (out / split).mkdir(parents=True, exist_ok=True)
        paths = []
        for n, start in enumerate(range(0, len(blocks), blocks_per_shard)):
            rel = f"{split}/shard-{n:05d}.bin"
            mm = np.memmap(out / rel, dtype=np.uint16, mode="w+", shape=blocks[start:start + blocks_per_shard].shape)
            mm[:] = blocks[start:start + blocks_per_shard]
            mm.flush()
            paths.append(rel)
        manifest[split] = paths
        manifest[f"num_{split}_blocks"] = len(blocks)
        manifest[f"num_{split}_tokens"] = int(blocks.size)
    shutil.copytree(tokenizer_dir, out / "tokenizer")
    manifest["tokenizer_sha256"] = hashlib.sha256((out / "tokenizer" / "tokenizer.json").read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


@pytest.fixture(scope="session")
def tokens_dir(tmp_path_factory, stdlib_texts, tiny_tokenizer_dir) -> Path:
    return make_token_shards(stdlib_texts, tiny_tokenizer_dir, tmp_path_factory.mktemp("tokens"), seq_len=64)
