"""The Qdrant module against real embedded Qdrant (Edge and local mode) and an unreachable server.

Edge-only behaviour (locking, private read-only copies, snapshots, push to a server) is in
test_edge_store.py."""
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from components.rag.qdrant_store import (
    IndexLockedError,
    QdrantStore,
    StoreUnavailableError,
    open_store,
)
from components.rag.sparse import SparseConfig, doc_vector, query_vector

DIMS = 16


def fill(store, n=60, seed=0, sparse=None):
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, DIMS)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    texts = [f"topic{i % 7} word{i} shared" for i in range(n)]
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(n)]
    store.ensure_collection(DIMS)
    sparse = sparse or SparseConfig()
    store.upsert(ids, vecs, [doc_vector(t, sparse) for t in texts],
                 [{"text": t, "doc_id": str(i), "hash": ""} for i, t in enumerate(texts)])
    return ids, vecs, texts


@pytest.mark.parametrize("embedded", ["edge", "local"])
@pytest.mark.parametrize("encoder", ["qdrant_bm25", "hashed"])
def test_dense_sparse_hybrid_and_delete(tmp_path, embedded, encoder):
    sparse = SparseConfig(encoder=encoder)
    with open_store(tmp_path / "q", "c", embedded=embedded) as store:
        ids, vecs, _ = fill(store, sparse=sparse)
        assert store.count() == 60 and store.point_ids() == set(ids)
        assert store.doc_hashes() == {str(i): "" for i in range(60)}
        q = vecs[5]
        exact = np.argsort(-vecs @ q)[:5]
        assert [h.id for h in store.search_dense(q, 5)] == [ids[i] for i in exact]
        assert store.search_sparse(query_vector("word17", sparse), 3)[0].id == ids[17]
        hybrid = store.search_hybrid(vecs[3], query_vector("word40", sparse), 5, 20, with_vectors=True)
        assert {ids[3], ids[40]} <= {h.id for h in hybrid}  # each branch's best survives fusion
        assert hybrid[0].dense is not None and len(hybrid[0].dense) == DIMS
        assert np.allclose(hybrid[[h.id for h in hybrid].index(ids[3])].dense, vecs[3], atol=1e-6)
        only_dense = store.search_hybrid(vecs[3], ([], []), 5, 20)  # a query without indexable words
        assert only_dense[0].id == ids[3]
        store.delete(ids[:10])
        assert store.count() == 50 and store.search_sparse(query_vector("word7", sparse), 3)[:1] == []
        assert store.ensure_collection(DIMS) is False  # same schema: kept
    with open_store(tmp_path / "q", "c", embedded=embedded) as store:  # persisted
        assert store.count() == 50
        assert store.ensure_collection(DIMS + 1) is True and store.count() == 0  # other dims: recreated


@pytest.mark.parametrize("embedded", ["edge", "local"])
def test_fusion_weights_decide_which_branch_leads(tmp_path, embedded):
    from components.rag.config import FusionConfig

    sparse = SparseConfig()
    with open_store(tmp_path / "q", "c", embedded=embedded) as store:
        ids, vecs, _ = fill(store, sparse=sparse)
        dense_best, sparse_best = ids[3], ids[40]  # vecs[3] is the query; "word40" is only in point 40
        query = (vecs[3], query_vector("word40", sparse), 5, 20)
        lead = {name: store.search_hybrid(*query, fusion=FusionConfig(rrf_k=2, **w))[0].id for name, w in {
            "dense": {"dense_weight": 10.0, "sparse_weight": 1.0},
            "sparse": {"dense_weight": 1.0, "sparse_weight": 10.0}}.items()}
        assert lead == {"dense": dense_best, "sparse": sparse_best}


def test_second_writer_fails_at_once_with_a_clear_message(tmp_path):
    with QdrantStore.open(tmp_path / "q", "c") as store:
        fill(store, n=5)
        t0 = time.monotonic()
        with pytest.raises(IndexLockedError, match="already open in another process.*QDRANT_URL"):
            QdrantStore.open(tmp_path / "q", "c")
        # readers wait a bounded time for the writer, then fail clearly instead of hanging
        with pytest.raises(IndexLockedError, match="stayed locked"):
            QdrantStore.open(tmp_path / "q", "c", read_only=True, lock_wait_s=0.5)
        assert time.monotonic() - t0 < 5
    r1 = QdrantStore.open(tmp_path / "q", "c", read_only=True)
    r2 = QdrantStore.open(tmp_path / "q", "c", read_only=True)  # readers coexist: private snapshots
    assert r1.count() == r2.count() == 5
    snap = r1._owned_dir
    r1.close(), r2.close()
    assert not snap.exists()
    with QdrantStore.open(tmp_path / "q", "c") as store:  # and the original is writable again
        assert store.count() == 5


@pytest.mark.integration
def test_writer_in_another_process_is_refused(tmp_path):
    path = tmp_path / "q"
    with QdrantStore.open(path, "c") as store:
        fill(store, n=5)
        code = ("from components.rag.qdrant_store import QdrantStore, IndexLockedError\n"
                f"try:\n    QdrantStore.open({str(path)!r}, 'c')\nexcept IndexLockedError as e:\n    print('LOCKED', e)\n")
        out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
        assert "LOCKED" in out.stdout and "QDRANT_URL" in out.stdout, out.stderr[-2000:]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_raises_unavailable_fast():
    store = QdrantStore.open(None, "c", url=f"http://127.0.0.1:{_free_port()}", timeout_s=1)
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="unavailable"):
        store.search_dense(np.ones(DIMS), 3)
    assert time.monotonic() - t0 < 3


def test_silent_server_times_out_within_bound():
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        store = QdrantStore.open(None, "c", url=f"http://127.0.0.1:{listener.getsockname()[1]}", timeout_s=1)
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            store.count()
        assert time.monotonic() - t0 < 5
