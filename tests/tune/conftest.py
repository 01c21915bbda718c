"""A small token artifact for sweep tests: a 512-token BPE over the stdlib docs, 64-token blocks.

Built here (not by tokenize.pack) so these tests do not depend on another stage; the layout is
the `tokenize.pack` artifact's. The vocabulary is small on purpose: at 2k tokens the embedding
and LM head would be most of every sweep model's compute.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest


def make_token_artifact(texts: list[str], out: Path, vocab_size: int = 512, seq_len: int = 64,
                        val_every: int = 10) -> Path:
    from components.tokenize.bpe import train_bpe_tokenizer

    tok = train_bpe_tokenizer(texts, vocab_size=vocab_size, out_dir=out / "tokenizer")
    streams: dict[str, list[int]] = {"train": [], "val": []}
    for i, text in enumerate(texts):
        split = "val" if i % val_every == val_every - 1 else "train"
        streams[split].extend(tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
    manifest: dict = {"seq_len": seq_len, "dtype": "uint16", "vocab_size": len(tok)}
    for split, ids in streams.items():
        blocks = np.asarray(ids[: len(ids) // seq_len * seq_len], dtype=np.uint16).reshape(-1, seq_len)
        (out / split).mkdir(parents=True, exist_ok=True)
        mm = np.memmap(out / split / "shard-00000.bin", dtype=np.uint16, mode="w+", shape=blocks.shape)
        mm[:] = blocks
        mm.flush()
        manifest.update({split: [f"{split}/shard-00000.bin"], f"num_{split}_blocks": len(blocks),
                         f"num_{split}_tokens": int(blocks.size)})
    manifest["tokenizer_sha256"] = hashlib.sha256((out / "tokenizer" / "tokenizer.json").read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


@pytest.fixture(scope="session")
def sweep_tokens_dir(tmp_path_factory, stdlib_texts) -> Path:
    return make_token_artifact(stdlib_texts, tmp_path_factory.mktemp("sweep_tokens"))
