"""Qdrant Edge behaviour of the store: locking, private read-only copies, HNSW, snapshots, push.

A Qdrant server binary cannot be had here, so the push is tested against a stub speaking the
three REST calls it makes (collection exists, create collection, upload a shard snapshot); what
the stub receives must load into a fresh Edge shard and answer exactly as the source index.
"""
import email.parser
import email.policy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import qdrant_edge as qe

from components.rag.config import HnswConfig, SparseConfig
from components.rag.edge_store import EdgeStore, write_snapshot
from components.rag.qdrant_store import IndexLockedError, push_snapshot
from components.rag.sparse import query_vector
from tests.rag.edge_index import DIMS, fill_shard

# The stub binds an ephemeral port: a fixed one in this range collides with Ray's worker ports
# (10002-19999 by default) whenever a Ray cluster runs beside the tests.
# a graph is built for segments over 1 KB, searched above 1 KB: the tiny test shard gets a real HNSW
SMALL_HNSW = HnswConfig(m=8, ef_construct=32, ef=64, full_scan_threshold_kb=1, indexing_threshold_kb=1)


def answers(store, vecs, texts, k=5):
    """Every query kind's (ids, scores) for a few queries: equal answers = equal indexes.
    Equal scores (RRF ties) have no defined order in Qdrant, so ties are sorted by id."""
    sparse = SparseConfig()
    out = []
    for i in (0, 7, 33, 120, 299):
        for hits in (store.search_dense(vecs[i], k), store.search_sparse(query_vector(f"word{i} topic3", sparse), k),
                     store.search_hybrid(vecs[i], query_vector(f"word{i + 1}", sparse), k, 20)):
            out.append(sorted(((h.id, round(h.score, 5)) for h in hits), key=lambda t: (-t[1], t[0])))
    return out


def test_second_open_of_a_shard_fails_at_once_and_readers_get_private_copies(tmp_path):
    fill_shard(tmp_path / "s", 40)
    with EdgeStore.open(tmp_path / "s") as writer:
        with pytest.raises(IndexLockedError, match="already open in another process.*QDRANT_URL"):
            EdgeStore.open(tmp_path / "s")
        assert writer.count() == 40
    write_snapshot(tmp_path / "s", tmp_path / "s.snapshot")
    r1 = EdgeStore.open(tmp_path / "s", read_only=True, snapshot=tmp_path / "s.snapshot")
    r2 = EdgeStore.open(tmp_path / "s", read_only=True)  # no snapshot: a copy of the shard
    with EdgeStore.open(tmp_path / "s") as writer:  # readers never hold the published shard
        writer.delete([next(iter(writer.point_ids()))])
    assert r1.count() == r2.count() == 40
    copies = [r1._owned_dir, r2._owned_dir]
    r1.close(), r2.close()
    assert not any(c.exists() for c in copies)


def test_hnsw_search_matches_exact_on_a_small_shard(tmp_path):
    ids, vecs, _ = fill_shard(tmp_path / "s", 600, hnsw=SMALL_HNSW)
    with EdgeStore.open(tmp_path / "s", hnsw=SMALL_HNSW) as store:
        info = store.shard.info()
        assert info.indexed_vectors_count == 2 * 600  # dense graph + sparse index: searches go through them
        hits = 0
        for i in range(0, 600, 30):
            exact = {ids[j] for j in np.argsort(-vecs @ vecs[i])[:10]}
            hits += len(exact & {h.id for h in store.search_dense(vecs[i], 10)})
        assert hits / (20 * 10) >= 0.95


def test_snapshot_round_trip_answers_identically(tmp_path):
    _, vecs, texts = fill_shard(tmp_path / "s", 300, hnsw=SMALL_HNSW)
    snap = write_snapshot(tmp_path / "s", tmp_path / "shard.snapshot")
    with EdgeStore.open(tmp_path / "s", hnsw=SMALL_HNSW) as store:
        expected = answers(store, vecs, texts)
    qe.EdgeShard.unpack_snapshot(str(snap), str(tmp_path / "fresh"))
    with EdgeStore.open(tmp_path / "fresh", hnsw=SMALL_HNSW) as fresh:
        assert fresh.count() == 300
        assert answers(fresh, vecs, texts) == expected
        assert fresh.shard.info().indexed_vectors_count == 2 * 300  # the graph travelled too


class StubQdrant(BaseHTTPRequestHandler):
    """The three calls of push_snapshot, recorded in ``self.server.calls``."""

    def _reply(self, result, status=200):
        body = json.dumps({"result": result, "status": "ok", "time": 0.0}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    # http.server dispatches on these names
    def do_GET(self):
        self.server.calls.append(("GET", self.path, None))
        self._reply({"exists": any(c[0] == "PUT" for c in self.server.calls)})

    def do_PUT(self):
        self.server.calls.append(("PUT", self.path, json.loads(self._body())))
        self._reply(True)

    def do_POST(self):
        raw = self._body()
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + raw)
        part = next(p for p in msg.iter_parts() if p.get_param("name", header="content-disposition") == "snapshot")
        self.server.calls.append(("POST", self.path, {"api-key": self.headers.get("api-key"),
                                                      "snapshot": part.get_payload(decode=True)}))
        self._reply(True)

    def log_message(self, *args):
        pass


def stub_server() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubQdrant)
    server.calls = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_push_snapshot_sends_the_schema_and_a_snapshot_that_loads_identically(tmp_path, monkeypatch):
    _, vecs, texts = fill_shard(tmp_path / "s", 300, hnsw=SMALL_HNSW)
    snap = write_snapshot(tmp_path / "s", tmp_path / "shard.snapshot")
    with EdgeStore.open(tmp_path / "s", hnsw=SMALL_HNSW) as store:
        expected = answers(store, vecs, texts)
    server = stub_server()
    monkeypatch.setenv("QDRANT_API_KEY", "k3y")
    try:
        out = push_snapshot(snap, f"http://127.0.0.1:{server.server_port}", "docs", DIMS, hnsw=SMALL_HNSW,
                            timeout_s=30)
    finally:
        server.shutdown()
        server.server_close()
    assert out["collection_created"] is True and out["snapshot_bytes"] == snap.stat().st_size
    (m1, p1, _), (m2, _, schema), (m3, p3, upload) = server.calls
    assert (m1, m2, m3) == ("GET", "PUT", "POST") and p1.startswith("/collections/docs/exists")
    assert schema["vectors"] == {"dense": {"size": DIMS, "distance": "Cosine"}}
    assert schema["sparse_vectors"] == {"sparse": {"modifier": "idf"}}
    assert schema["hnsw_config"] == {"m": 8, "ef_construct": 32, "full_scan_threshold": 1}
    assert p3.startswith("/collections/docs/shards/0/snapshots/upload") and "priority=snapshot" in p3
    assert upload["api-key"] == "k3y" and upload["snapshot"] == snap.read_bytes()
    (tmp_path / "received.snapshot").write_bytes(upload["snapshot"])
    qe.EdgeShard.unpack_snapshot(str(tmp_path / "received.snapshot"), str(tmp_path / "fresh"))
    with EdgeStore.open(tmp_path / "fresh", hnsw=SMALL_HNSW) as fresh:
        assert answers(fresh, vecs, texts) == expected


def test_push_refuses_a_missing_snapshot(tmp_path):
    with pytest.raises(FileNotFoundError, match="store.embedded: edge"):
        push_snapshot(tmp_path / "none", "http://127.0.0.1:1", "docs", DIMS)


def test_rag_push_step_loads_an_index_artifact_into_a_server_and_describes_it(tmp_path, monkeypatch):
    from components.rag.config import PushConfig
    from components.rag.steps import run_push
    from flows.engine.context import StepContext
    from tests.rag.edge_index import write_artifact

    write_artifact(tmp_path / "index", 50)
    server = stub_server()
    monkeypatch.setenv("QDRANT_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.delenv("QDRANT_API_KEY", raising=False)
    try:
        ctx = StepContext.for_test(tmp_path / "pushed", {"index": tmp_path / "index"})
        metrics = run_push(ctx, PushConfig(collection="served"))
    finally:
        server.shutdown()
        server.server_close()
    assert [c[0] for c in server.calls] == ["GET", "PUT", "POST"]
    assert server.calls[2][2]["snapshot"] == (tmp_path / "index" / "shard.snapshot").read_bytes()
    assert metrics["collection_created"] == 1.0
    meta = json.loads((tmp_path / "pushed" / "index.json").read_text())
    assert meta["backend"] == "server" and meta["collection"] == "served" and "snapshot" not in meta
    with pytest.raises(ValueError, match="QDRANT_URL"):
        monkeypatch.delenv("QDRANT_URL")
        run_push(StepContext.for_test(tmp_path / "again", {"index": tmp_path / "index"}), PushConfig())
