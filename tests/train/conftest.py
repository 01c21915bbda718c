"""The session's token shards for training tests (built by tests/fixtures/token_shards.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.token_shards import make_token_shards


@pytest.fixture(scope="session")
def tokens_dir(tmp_path_factory, stdlib_texts, tiny_tokenizer_dir) -> Path:
    return make_token_shards(stdlib_texts, tiny_tokenizer_dir, tmp_path_factory.mktemp("tokens"), seq_len=64)
