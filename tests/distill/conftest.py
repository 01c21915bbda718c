"""Session fixtures of the distill tests: token shards of the stdlib docs (the tiny LMs are in tests/fixtures)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import tiny_lm


@pytest.fixture(scope="session")
def tokens_dir(tmp_path_factory, tiny_tokenizer_dir, stdlib_texts) -> Path:
    return tiny_lm.write_token_shards(tmp_path_factory.mktemp("tokens"), tiny_tokenizer_dir, stdlib_texts, seq_len=64)
