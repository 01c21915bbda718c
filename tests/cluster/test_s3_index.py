"""The RAG index on an object-store root: a rag.index artifact committed to S3 (moto) is opened, as the
router's constructor opens its `index_dir` (open_artifact, then open_index), on a node that never saw
the local copy (its own empty cache), and answers the same searches. (The router class itself is a
Serve ingress whose constructor only runs inside a replica.)"""
from __future__ import annotations

import shutil

import pytest

from flows.engine.store import ArtifactStore
from tests.cluster.s3_server import BUCKET

pytestmark = pytest.mark.integration
ADDR = "f" * 64


def test_router_opens_the_index_artifact_from_the_bucket(s3_endpoint, rag_index_dir, tmp_path, monkeypatch):
    from components.rag.embed import shared_embedder
    from components.rag.retriever import open_index
    from flows.engine.store import open_artifact

    monkeypatch.setenv("LLMFLOW_CACHE", str(tmp_path / "writer-cache"))
    store = ArtifactStore(f"s3://{BUCKET}/{tmp_path.name}")
    tmp = store.new_temp("index", ADDR)
    shutil.copytree(rag_index_dir, tmp, dirs_exist_ok=True)
    uri = store.commit(tmp, "index", ADDR, {"metrics": {}})
    assert uri.startswith(f"s3://{BUCKET}/")

    monkeypatch.setenv("LLMFLOW_CACHE", str(tmp_path / "replica-cache"))  # another node: nothing cached
    fetched = open_index(open_artifact(uri), read_only=True)
    assert (tmp_path / "replica-cache" / "index" / ADDR[:16] / "index.json").is_file()
    original = open_index(rag_index_dir, read_only=True)
    assert fetched.count() == original.count() > 0
    vector = shared_embedder().embed(["how are artifacts committed?"])[0]
    assert [h.id for h in fetched.search_dense(vector, 5)] == [h.id for h in original.search_dense(vector, 5)]

    with pytest.raises(FileNotFoundError, match="not a complete artifact"):
        open_artifact(f"s3://{BUCKET}/{tmp_path.name}/index/{'0' * 64}")
