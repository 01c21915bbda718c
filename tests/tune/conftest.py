"""A small token artifact for sweep tests: a 512-token BPE over the stdlib docs, 64-token blocks.

Built here (not by tokenize.pack) so these tests do not depend on another stage; the layout is
the `tokenize.pack` artifact's. The vocabulary is small on purpose: at 2k tokens the embedding
and LM head would be most of every sweep model's compute.
"""
from __future__ import annotations

from pathlib import Path

import pytest


def make_token_artifact(texts: list[str], out: Path, vocab_size: int = 512, seq_len: int = 64,
                        val_every: int = 10) -> Path:
    from components.tokenize.bpe import train_bpe_tokenizer
    from tests.fixtures.token_shards import make_token_shards

    tokenizer_dir = out.with_name(out.name + "-tokenizer")
    train_bpe_tokenizer(texts, vocab_size=vocab_size, out_dir=tokenizer_dir)
    return make_token_shards(texts, tokenizer_dir, out, seq_len=seq_len, val_every=val_every,
                             blocks_per_shard=1 << 30)  # one shard per split


@pytest.fixture(scope="session")
def sweep_tokens_dir(tmp_path_factory, stdlib_texts) -> Path:
    return make_token_artifact(stdlib_texts, tmp_path_factory.mktemp("sweep_tokens"))
