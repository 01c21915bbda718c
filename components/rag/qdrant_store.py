"""The module that talks to Qdrant: :func:`open_store` picks the backend, never a test switch.

- ``QDRANT_URL`` (+ ``QDRANT_API_KEY``): a Qdrant server via qdrant-client; any number of
  processes read and write. :func:`push_snapshot` loads an Edge index into a server collection.
- otherwise embedded, at a directory: Qdrant Edge by default (:mod:`components.rag.edge_store`,
  the Qdrant engine in-process: HNSW, WAL, snapshots), or qdrant-client's local mode
  (``StoreConfig.embedded: local``), described here. Local mode loads the collection into the
  process and holds an exclusive, non-blocking file lock on ``<path>/.lock`` for the client's
  lifetime, so two writers on one path cannot both proceed. The second writer gets
  :class:`IndexLockedError` at once (no hang, no corruption). Readers (router replicas,
  evaluation) open a private snapshot: the directory is copied under the same lock (briefly,
  waiting a bounded time if a writer holds it) into a temporary directory that the reader then
  owns, so any number of replicas can serve one published index.

Every backend holds one schema: two named vectors per point, ``dense`` (cosine, HNSW) and
``sparse`` (BM25 term weights, ``Modifier.IDF``), so hybrid search is a single query with two
prefetches fused by reciprocal-rank fusion.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from components.rag.config import FusionConfig

# re-exported: callers import them from here
from components.rag.store_types import (
    DENSE,
    SPARSE,
    Hit,
    IndexLockedError,
    PayloadScan,
    StoreUnavailableError,
)


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


def open_store(path: str | Path | None, collection: str, *, embedded: str = "edge", url: str | None = None,
               hnsw=None, read_only: bool = False, snapshot: str | Path | None = None, timeout_s: float = 5.0,
               lock_wait_s: float = 10.0):
    """The store of an index: the server at ``url`` if given, else the ``embedded`` engine at ``path``
    (``edge`` or ``local``). ``hnsw`` is a :class:`components.rag.config.HnswConfig` (None = defaults);
    ``snapshot`` lets a read-only Edge open unpack a snapshot instead of copying the shard."""
    if url or embedded == "local":
        return QdrantStore.open(path, collection, url=url, read_only=read_only, timeout_s=timeout_s,
                                lock_wait_s=lock_wait_s, hnsw=hnsw)
    if embedded != "edge":
        raise ValueError(f"store.embedded must be 'edge' or 'local', got {embedded!r}")
    if path is None:
        raise ValueError("an embedded Qdrant index needs a path (or set QDRANT_URL for a server)")
    from components.rag.edge_store import EdgeStore

    return EdgeStore.open(path, hnsw=hnsw, read_only=read_only, snapshot=snapshot)


def collection_schema(dims: int, hnsw=None) -> dict:
    """``create_collection`` arguments of the one schema every backend holds (Edge's shard config too)."""
    from qdrant_client import models

    schema = {"vectors_config": {DENSE: models.VectorParams(size=dims, distance=models.Distance.COSINE)},
              "sparse_vectors_config": {SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)}}
    if hnsw is not None:
        schema["hnsw_config"] = models.HnswConfigDiff(m=hnsw.m, ef_construct=hnsw.ef_construct,
                                                      full_scan_threshold=hnsw.full_scan_threshold_kb)
    return schema


class QdrantStore(PayloadScan):
    """A Qdrant collection with ``dense`` + ``sparse`` named vectors via qdrant-client (server or
    local mode). Open with :meth:`open`."""

    def __init__(self, client, collection: str, location: str, owned_dir: Path | None = None, hnsw=None,
                 backend: str = "local"):
        self.client = client
        self.collection = collection
        self.location = location        # human-readable, for messages and index.json
        self.hnsw = hnsw                # HnswConfig: the server's graph and search ef (local mode has none)
        self.backend = backend
        self.sparse_config = None       # the index's SparseConfig, set by open_index for query encoding
        self._owned_dir = owned_dir     # a private snapshot to delete on close

    # -- opening -------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path | None, collection: str, *, url: str | None = None, read_only: bool = False,
             timeout_s: float = 5.0, lock_wait_s: float = 10.0, hnsw=None) -> QdrantStore:
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
            return cls(client, collection, location=url, hnsw=hnsw, backend="server")
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
        with self._guard():
            if self.client.collection_exists(self.collection):
                params = self.client.get_collection(self.collection).config.params
                vectors = params.vectors if isinstance(params.vectors, dict) else {}
                if DENSE in vectors and vectors[DENSE].size == dims and SPARSE in (params.sparse_vectors or {}):
                    return False
                self.client.delete_collection(self.collection)
            self.client.create_collection(self.collection, **collection_schema(dims, self.hnsw))
            return True

    # -- writing -------------------------------------------------------------------
    def payloads(self, fields: list[str] | bool = True):
        """``(id, payload)`` of every point (payload cut to ``fields``; False = none), page by page."""
        offset = None
        while True:
            with self._guard():
                points, offset = self.client.scroll(self.collection, limit=1024, offset=offset,
                                                    with_payload=fields, with_vectors=False)
            for p in points:
                yield str(p.id), dict(p.payload or {})
            if offset is None:
                return



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

    def finish(self) -> dict:
        """Nothing to do: a server optimizes in the background, local mode has no index."""
        return {}

    def _search_params(self):
        from qdrant_client import models

        return models.SearchParams(hnsw_ef=self.hnsw.ef) if self.hnsw is not None else None

    # -- searching -----------------------------------------------------------------
    def search_dense(self, vector, k: int, with_vectors: bool = False) -> list[Hit]:
        with self._guard():
            res = self.client.query_points(self.collection, query=[float(x) for x in vector], using=DENSE,
                                           limit=k, with_payload=True, search_params=self._search_params(), with_vectors=[DENSE] if with_vectors else False)
        return [self._hit(p) for p in res.points]

    def search_sparse(self, sparse: tuple[list[int], list[float]], k: int) -> list[Hit]:
        from qdrant_client import models

        with self._guard():
            res = self.client.query_points(self.collection, query=models.SparseVector(indices=sparse[0], values=sparse[1]),
                                           using=SPARSE, limit=k, with_payload=True)
        return [self._hit(p) for p in res.points]

    def search_hybrid(self, vector, sparse: tuple[list[int], list[float]], k: int, prefetch_k: int,
                      with_vectors: bool = False, fusion: FusionConfig | None = None) -> list[Hit]:
        """Dense and sparse candidates (``prefetch_k`` each) fused by weighted reciprocal-rank fusion."""
        from qdrant_client import models

        fusion = fusion or FusionConfig()
        weights = [fusion.dense_weight]
        prefetch = [models.Prefetch(query=[float(x) for x in vector], using=DENSE, limit=prefetch_k,
                                    params=self._search_params())]
        if sparse[0]:  # a query with no indexable word has no sparse branch
            prefetch.append(models.Prefetch(query=models.SparseVector(indices=sparse[0], values=sparse[1]),
                                            using=SPARSE, limit=prefetch_k))
            weights.append(fusion.sparse_weight)
        with self._guard():
            res = self.client.query_points(self.collection, prefetch=prefetch,
                                           query=models.RrfQuery(rrf=models.Rrf(k=fusion.rrf_k, weights=weights)), limit=k,
                                           with_payload=True, with_vectors=[DENSE] if with_vectors else False)
        return [self._hit(p) for p in res.points]

    @staticmethod
    def _hit(p) -> Hit:
        vec = p.vector.get(DENSE) if isinstance(p.vector, dict) else None
        return Hit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {}), dense=vec)

    def _guard(self):
        return _ServerErrors(self.location)


def push_snapshot(snapshot: str | Path, url: str, collection: str, dims: int, hnsw=None,
                  timeout_s: float = 300.0) -> dict:
    """Serve an Edge index from a Qdrant server: create ``collection`` with the index's schema if
    missing (one shard), then recover its shard 0 from the Edge snapshot, uploaded (Qdrant's
    ``POST /collections/{name}/shards/0/snapshots/upload``). API key from ``QDRANT_API_KEY``."""
    import httpx

    snapshot = Path(snapshot)
    if not snapshot.is_file():
        raise FileNotFoundError(f"no snapshot at {snapshot}: push a rag.index artifact built with store.embedded: edge")
    store = QdrantStore.open(None, collection, url=url, timeout_s=timeout_s, hnsw=hnsw)
    try:
        created = store.ensure_collection(dims)
    finally:
        store.close()
    key = os.environ.get("QDRANT_API_KEY")
    with _ServerErrors(url), snapshot.open("rb") as fh:
        r = httpx.post(f"{url.rstrip('/')}/collections/{collection}/shards/0/snapshots/upload",
                       params={"wait": "true", "priority": "snapshot"}, headers={"api-key": key} if key else {},
                       files={"snapshot": (snapshot.name, fh, "application/octet-stream")}, timeout=timeout_s)
    if r.status_code >= 400:
        raise RuntimeError(f"Qdrant at {url} refused the snapshot of {collection!r}: HTTP {r.status_code}: {r.text[:500]}")
    return {"collection": collection, "collection_created": created, "snapshot_bytes": snapshot.stat().st_size,
            "response": r.json()}


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
