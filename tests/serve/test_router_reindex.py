"""Re-indexing while the router serves: two router replicas on Ray Serve take concurrent chat
traffic while the flow engine's commit replaces the index artifact they serve; no request may
fail, and the rebuilt index answers once the replicas have swapped (each checks every 0.5 s)."""
from __future__ import annotations

import shutil
import threading
import time

import pytest
from ray import serve

from flows.engine.store import ArtifactStore
from serve.router.app import build_router
from serve.router.config import RouterConfig
from tests.rag.edge_index import write_docs_artifact
from tests.serve.test_router import KEY, KEY_ENV, EchoLLM, chat, serve_base  # noqa: F401 -- serve_base is a fixture

pytestmark = pytest.mark.integration

ADDRESS = "fedcba9876543210" * 4
QUESTION = "Which exception does a failing assert statement raise?"
REBUILT = {"rebuilt-assert": "The assert statement raises AssertionError when its expression is false.",
           "rebuilt-pass": "The pass statement does nothing; it is a placeholder where a statement is required."}


def test_reindex_while_serving_swaps_atomically_without_failed_requests(serve_base, rag_index_dir, tmp_path):  # noqa: F811
    import os

    from components.rag.embed import shared_embedder

    artifacts = ArtifactStore(str(tmp_path / "artifacts"))
    tmp = artifacts.new_temp("rag.index", ADDRESS)
    shutil.copytree(rag_index_dir, tmp, dirs_exist_ok=True)
    index_dir = artifacts.commit(tmp, "rag.index", ADDRESS, {"step": "rag.index"})
    config = RouterConfig(index_dir=index_dir, relevance_threshold=-1.0, num_replicas=2, num_cpus=0.5,
                          index_reload_s=0.5)
    os.environ[KEY_ENV] = KEY
    serve.run(build_router(config, EchoLLM.bind(), api_key_env=KEY_ENV), name="rag-router-reindex",
              route_prefix="/ragswap")
    url = f"{serve_base}/ragswap"
    results, stop = [], threading.Event()

    def traffic():
        while not stop.is_set():
            r = chat(url, QUESTION)
            sources = r.json().get("rag", {}).get("sources", []) if r.status_code == 200 else []
            results.append((r.status_code, {s["doc_id"] for s in sources}, r.text[:300]))

    clients = [threading.Thread(target=traffic) for _ in range(4)]
    try:
        for c in clients:
            c.start()
        time.sleep(2.0)
        rebuilt = artifacts.new_temp("rag.index", ADDRESS)
        write_docs_artifact(rebuilt, REBUILT, shared_embedder().embed(list(REBUILT.values())))
        artifacts.commit(rebuilt, "rag.index", ADDRESS, {"step": "rag.index"})  # move aside, rename in
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # until both replicas answer from the rebuilt index
            if len(results) > 20 and all(d and d <= set(REBUILT) for _, d, _ in results[-20:]):
                break
            time.sleep(0.2)
    finally:
        stop.set()
        for c in clients:
            c.join()
        serve.delete("rag-router-reindex")
    failed = [r for r in results if r[0] != 200]
    assert not failed, failed[:3]
    kinds = [("new" if d <= set(REBUILT) else "old") for _, d, _ in results if d]
    assert len(kinds) == len(results)  # every answer cited sources of one index, never a mix
    assert kinds[0] == "old" and kinds[-20:] == ["new"] * 20, kinds[-40:]
