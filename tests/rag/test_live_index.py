"""Re-indexing while serving: a rebuilt artifact published by the flow engine's commit is swapped in
under concurrent searches, with no failed search and the new index visible after the swap."""
import threading
import time

from components.rag.config import SparseConfig
from components.rag.retriever import open_index
from components.rag.sparse import query_vector
from flows.engine.store import ArtifactStore
from tests.rag.edge_index import corpus, write_artifact

ADDRESS = "0123456789abcdef" * 4


def publish(store: ArtifactStore, n: int, seed: int, prefix: str) -> str:
    tmp = store.new_temp("rag.index", ADDRESS)
    write_artifact(tmp, n, seed, prefix)
    return store.commit(tmp, "rag.index", ADDRESS, {"step": "rag.index"})


def test_rebuilt_index_swaps_in_under_concurrent_searches(tmp_path):
    artifacts = ArtifactStore(str(tmp_path / "artifacts"))
    index_dir = publish(artifacts, 300, seed=1, prefix="old")
    _, vecs, _ = corpus(300, seed=1)
    sparse = SparseConfig()
    live = open_index(index_dir, reload_s=0.1)
    live.grace_s = 0.5  # the old copy closes while searches run: only in-flight counting keeps them safe
    errors, seen, stop = [], [[] for _ in range(4)], threading.Event()

    def search(worker: int):
        i = 0
        while not stop.is_set():
            i += 1
            try:
                for hits in (live.search_hybrid(vecs[i % 300], query_vector(f"word{i % 300}", sparse), 5, 20),
                             live.search_dense(vecs[(i * 7) % 300], 3)):
                    assert hits
                    seen[worker].append({h.payload["doc_id"].split("-")[0] for h in hits})
            except Exception as e:  # noqa: BLE001 -- any failure is the test's failure
                errors.append(repr(e))

    workers = [threading.Thread(target=search, args=(w,)) for w in range(4)]
    try:
        for w in workers:
            w.start()
        time.sleep(1.0)
        publish(artifacts, 300, seed=2, prefix="new")  # the engine's commit: move aside, rename in
        deadline = time.monotonic() + 30
        while live.num_swaps == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # searches keep running across the swap and past the old copy's close
        assert not live._retired  # the old copy was closed
    finally:
        stop.set()
        for w in workers:
            w.join()
    try:
        assert not errors, errors[:3]
        assert live.num_swaps == 1 and live.last_error is None
        for answers in seen:
            assert all(len(a) == 1 for a in answers)  # every answer from one index, never a mix
            kinds = [a.pop() for a in answers]
            first_new = kinds.index("new")
            assert first_new > 0 and set(kinds[first_new:]) == {"new"}  # once swapped, never back
        assert {h.payload["doc_id"].split("-")[0] for h in live.search_dense(vecs[0], 10)} == {"new"}
    finally:
        live.close()
