"""RAG fixtures, shared by tests/rag (via its conftest) and tests/serve/test_router*.py (by import).

A fixture imported into two places is two fixture definitions to pytest, so the expensive
index is memoised here: one build per test session whichever module asks first.
"""
from __future__ import annotations

from pathlib import Path

import pytest

# Topics of the stdlib's pydoc documentation: real prose with distinct vocabulary per topic.
TOPICS = ["assert", "async", "augassign", "break", "class", "del", "dict", "exceptions", "for", "global",
          "import", "lambda", "pass", "while", "with", "yield"]
_BUILT: dict[str, Path] = {}


def write_docs(out: Path, docs: dict[str, str]) -> Path:
    import pandas as pd

    (out / "docs").mkdir(parents=True, exist_ok=True)
    keys = sorted(docs)
    pd.DataFrame({"id": keys, "text": [docs[k] for k in keys], "source": ["pydoc_data.topics"] * len(keys),
                  "title": keys}).to_parquet(out / "docs" / "part-00000.parquet")
    return out


@pytest.fixture(scope="session")
def docs_writer():
    """``write_docs(out_dir, {id: text})`` → a data.corpus-style docs artifact."""
    return write_docs


@pytest.fixture(scope="session")
def rag_docs() -> dict[str, str]:
    from pydoc_data.topics import topics

    return {k: topics[k] for k in TOPICS}


@pytest.fixture(scope="session")
def rag_docs_dir(tmp_path_factory, rag_docs) -> Path:
    if "docs" not in _BUILT:
        _BUILT["docs"] = write_docs(tmp_path_factory.mktemp("rag_docs"), rag_docs)
    return _BUILT["docs"]


@pytest.fixture(scope="session")
def rag_index_dir(tmp_path_factory, ray_local, rag_docs_dir) -> Path:
    """A rag.index artifact built by the step itself (local-mode Qdrant inside it)."""
    if "index" not in _BUILT:
        from components.rag.config import IndexConfig
        from components.rag.steps import run_index
        from flows.engine.context import StepContext

        out = tmp_path_factory.mktemp("rag_index")
        run_index(StepContext.for_test(out, {"docs": rag_docs_dir}), IndexConfig())
        _BUILT["index"] = out
    return _BUILT["index"]
