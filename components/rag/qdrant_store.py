"""The one module that talks to Qdrant (qdrant-client).

Two backends, chosen by the environment, never by a test switch:
- ``QDRANT_URL`` (+ ``QDRANT_API_KEY``): a Qdrant server; any number of processes read and write.
- otherwise embedded local mode at a directory. Local mode loads the collection into the
  process and holds an exclusive, non-blocking file lock on ``<path>/.lock`` for the client's
  lifetime, so two writers on one path cannot both proceed. The second writer gets
  :class:`IndexLockedError` at once (no hang, no corruption). Readers (router replicas,
  evaluation) open a private snapshot: the directory is copied under the same lock (briefly,
  waiting a bounded time if a writer holds it) into a temporary directory that the reader then
  owns, so any number of replicas can serve one published index.

One collection holds two named vectors per point: ``dense`` (cosine) and ``sparse`` (BM25-style
term weights, ``Modifier.IDF``), so hybrid search is a single ``query_points`` with two
prefetches fused by reciprocal-rank fusion.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DENSE, SPARSE = "dense", "sparse"


class IndexLockedError(RuntimeError):
    """A local-mode index is open for writing by another process."""


class StoreUnavailableError(RuntimeError):
    """The Qdrant server did not answer (down, unreachable, or slower than the timeout)."""


@dataclass
class Hit:
    id: str
    score: float                 # the ranking score of the query (cosine, or RRF when fused)
    payload: dict[str, Any]
    dense: list[float] | None = field(default=None, repr=False)


def server_url() -> str | None:
    return os.environ.get("QDRANT_URL") or None


def _lock_file(path: Path):
    import portalocker  # the same lock qdrant-client's local mode takes on <path>/.lock

    path.mkdir(parents=True, exist_ok=True)
    lock_path = path / ".lock"
    if not lock_path.exists():
        lock_path.write_text("tmp lock file")
    return portalocker, open(lock_path, "r+")


def snapshot_local(path: str | Path, wait_s: float = 10.0) -> Path:
    """Copy a local-mode index into a private temp dir, under its lock; the caller owns the copy.

    Waits at most ``wait_s`` for a writer to finish, then raises :class:`IndexLockedError`.
    """
    path = Path(path)
    if not (path / "meta.json").exists():
        raise FileNotFoundError(f"no Qdrant local index at {path} (meta.json missing); run the rag.index step first")
    portalocker, fh = _lock_file(path)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                portalocker.lock(fh, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
                break
            except portalocker.exceptions.LockException:
                if time.monotonic() > deadline:
                    raise IndexLockedError(
                        f"Qdrant local index {path} stayed locked by another process for {wait_s:.0f} s "
                        "(an indexing step still writing it?). Wait for it to finish, or serve from a "
                        "Qdrant server (set QDRANT_URL) for concurrent writers and readers.") from None
                time.sleep(0.1)
        dest = Path(tempfile.mkdtemp(prefix="qdrant-snapshot-"))
        shutil.copytree(path, dest, ignore=shutil.ignore_patterns(".lock"), dirs_exist_ok=True)
        return dest
    finally:
        try:
            portalocker.unlock(fh)
        finally:
            fh.close()


class QdrantStore:
    """A Qdrant collection with ``dense`` + ``sparse`` named vectors. Open with :meth:`open`."""

    def __init__(self, client, collection: str, location: str, owned_dir: Path | None = None):
        self.client = client
        self.collection = collection
        self.location = location        # human-readable, for messages and index.json
        self._owned_dir = owned_dir     # a private snapshot to delete on close

    # -- opening -------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path | None, collection: str, *, url: str | None = None, read_only: bool = False,
             timeout_s: float = 5.0, lock_wait_s: float = 10.0) -> QdrantStore:
        """The server at ``url`` (API key from ``QDRANT_API_KEY``) if given, else local mode at ``path``.

        ``read_only`` local opens go through :func:`snapshot_local`; writable local opens take
        the path's lock or raise :class:`IndexLockedError` immediately.
        """
        from qdrant_client import QdrantClient

        if url:
            # check_compatibility would make a blocking request at construction; health is
            # checked by the first real call, which honours the timeout.
            client = QdrantClient(url=url, api_key=os.environ.get("QDRANT_API_KEY") or None,
                                  timeout=max(1, round(timeout_s)), check_compatibility=False)
            return cls(client, collection, location=url)
        if path is None:
            raise ValueError("a local Qdrant index needs a path (or set QDRANT_URL for a server)")
        path = Path(path)
        if read_only:
            copy = snapshot_local(path, wait_s=lock_wait_s)
            return cls(QdrantClient(path=str(copy)), collection, location=str(path), owned_dir=copy)
        try:
            client = QdrantClient(path=str(path))
        except RuntimeError as e:
            if "already accessed" not in str(e):
                raise
            raise IndexLockedError(
                f"Qdrant local index {path} is already open in another process (local mode allows "
                "one process per path). Stop the other writer, open it read-only (a private "
                "snapshot, as the router does), or use a Qdrant server via QDRANT_URL.") from None
        return cls(client, collection, location=str(path))

    def close(self) -> None:
        self.client.close()
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None

    def __enter__(self) -> QdrantStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- schema --------------------------------------------------------------------
    def ensure_collection(self, dims: int) -> bool:
        """Create the collection if missing (or recreate it if its dense size differs). True if created."""
        from qdrant_client import models

        with self._guard():
            if self.client.collection_exists(self.collection):
                params = self.client.get_collection(self.collection).config.params
                vectors = params.vectors if isinstance(params.vectors, dict) else {}
                if DENSE in vectors and vectors[DENSE].size == dims and SPARSE in (params.sparse_vectors or {}):
                    return False
                self.client.delete_collection(self.collection)
            self.client.create_collection(
                self.collection,
                vectors_config={DENSE: models.VectorParams(size=dims, distance=models.Distance.COSINE)},
                sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            )
            return True

    # -- writing -------------------------------------------------------------------
    def point_ids(self) -> set[str]:
        """Every point id in the collection (a scroll without payloads or vectors)."""
        ids: set[str] = set()
        offset = None
        with self._guard():
            while True:
                points, offset = self.client.scroll(self.collection, limit=1024, offset=offset,
                                                    with_payload=False, with_vectors=False)
                ids.update(str(p.id) for p in points)
                if offset is None:
                    return ids

    def doc_hashes(self) -> dict[str, str]:
        """``doc_id → hash`` (the indexed text's content hash) of every document with a point in the collection."""
        docs: dict[str, str] = {}
        offset = None
        with self._guard():
            while True:
                points, offset = self.client.scroll(self.collection, limit=1024, offset=offset,
                                                    with_payload=["doc_id", "hash"], with_vectors=False)
                docs.update((str(p.payload["doc_id"]), str(p.payload.get("hash", ""))) for p in points)
                if offset is None:
                    return docs

    def upsert(self, ids: list[str], dense: Iterable, sparse: Iterable[tuple[list[int], list[float]]],
               payloads: list[dict]) -> None:
        from qdrant_client import models

        points = [
            models.PointStruct(id=i, payload=p, vector={
                DENSE: [float(x) for x in d],
                SPARSE: models.SparseVector(indices=list(si), values=list(sv))})
            for i, d, (si, sv), p in zip(ids, dense, sparse, payloads, strict=True)
        ]
        with self._guard():
            self.client.upsert(self.collection, points=points, wait=True)

    def delete(self, ids: Iterable[str]) -> None:
        from qdrant_client import models

        ids = list(ids)
        with self._guard():
            for i in range(0, len(ids), 1024):
                self.client.delete(self.collection, points_selector=models.PointIdsList(points=ids[i:i + 1024]),
                                   wait=True)

    def count(self) -> int:
        with self._guard():
            return self.client.count(self.collection, exact=True).count

    # -- searching -----------------------------------------------------------------
    def search_dense(self, vector, k: int, with_vectors: bool = False) -> list[Hit]:
        with self._guard():
            res = self.client.query_points(self.collection, query=[float(x) for x in vector], using=DENSE,
                                           limit=k, with_payload=True, with_vectors=[DENSE] if with_vectors else False)
        return [self._hit(p) for p in res.points]

    def search_sparse(self, sparse: tuple[list[int], list[float]], k: int) -> list[Hit]:
        from qdrant_client import models

        with self._guard():
            res = self.client.query_points(self.collection, query=models.SparseVector(indices=sparse[0], values=sparse[1]),
                                           using=SPARSE, limit=k, with_payload=True)
        return [self._hit(p) for p in res.points]

    def search_hybrid(self, vector, sparse: tuple[list[int], list[float]], k: int, prefetch_k: int,
                      with_vectors: bool = False) -> list[Hit]:
        """Dense and sparse candidates (``prefetch_k`` each) fused by reciprocal-rank fusion."""
        from qdrant_client import models

        prefetch = [models.Prefetch(query=[float(x) for x in vector], using=DENSE, limit=prefetch_k)]
        if sparse[0]:  # a query with no indexable word has no sparse branch
            prefetch.append(models.Prefetch(query=models.SparseVector(indices=sparse[0], values=sparse[1]),
                                            using=SPARSE, limit=prefetch_k))
        with self._guard():
            res = self.client.query_points(self.collection, prefetch=prefetch,
                                           query=models.FusionQuery(fusion=models.Fusion.RRF), limit=k,
                                           with_payload=True, with_vectors=[DENSE] if with_vectors else False)
        return [self._hit(p) for p in res.points]

    @staticmethod
    def _hit(p) -> Hit:
        vec = p.vector.get(DENSE) if isinstance(p.vector, dict) else None
        return Hit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {}), dense=vec)

    def _guard(self):
        return _ServerErrors(self.location)


class _ServerErrors:
    """Turn transport failures of a Qdrant server into :class:`StoreUnavailableError`."""

    def __init__(self, location: str):
        self.location = location

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            return False
        import httpx
        from qdrant_client.http.exceptions import (
            ResponseHandlingException,
            UnexpectedResponse,
        )

        transport = isinstance(exc, (ResponseHandlingException, httpx.TransportError, TimeoutError, ConnectionError))
        server_side = isinstance(exc, UnexpectedResponse) and exc.status_code is not None and exc.status_code >= 500
        if transport or server_side:
            raise StoreUnavailableError(f"Qdrant at {self.location} is unavailable: {type(exc).__name__}: {exc}") from exc
        return False
