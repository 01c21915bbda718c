"""Fixtures of the tokenize tests: a small docs artifact of real stdlib text."""
from __future__ import annotations

import pytest

from components.artifacts import Docs


@pytest.fixture(scope="session")
def docs_artifact(tmp_path_factory, stdlib_texts):
    """The pydoc topics as a docs artifact (3 shards), the layout data.* steps write."""
    out = tmp_path_factory.mktemp("docs")
    records = [{"id": f"t{i:03d}", "text": t, "source": "test", "title": ""} for i, t in enumerate(stdlib_texts)]
    Docs.write(records, out, docs_per_shard=30)
    return out
