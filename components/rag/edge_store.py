"""Qdrant Edge: the Qdrant engine embedded in this process (``qdrant-edge-py``), the default store.

One Edge *shard* is a directory (``segments/``, ``wal/``, ``edge_config.json``) with the same
layout and schema as a shard of a Qdrant server collection: ``dense`` (cosine, HNSW) and
``sparse`` (BM25 term frequencies, ``Modifier.Idf``) named vectors, so hybrid search is one query
with two prefetches fused by Qdrant's reciprocal-rank fusion. Same interface as
:class:`components.rag.qdrant_store.QdrantStore`; open it through
:func:`components.rag.qdrant_store.open_store`.

Concurrency, as Edge does it: a shard directory is open in one process at a time (its WAL is
locked; a second writer gets :class:`IndexLockedError` at once), and loading a shard rewrites some
of its files, so readers never load a published shard in place. A reader (router replica,
evaluation) unpacks the artifact's snapshot, or copies the shard, into a private temporary
directory that it owns and deletes on close.

A snapshot is the shard's directory as an uncompressed tar, the layout of a Qdrant shard snapshot:
``EdgeShard.unpack_snapshot`` restores it, and a Qdrant server recovers a collection's shard from
it (``push_snapshot`` in :mod:`components.rag.qdrant_store`).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path

from components.rag.config import FusionConfig, HnswConfig
from components.rag.store_types import DENSE, SPARSE, Hit, IndexLockedError, PayloadScan

_PAGE = 1024


def _is_shard(path: Path) -> bool:
    return (path / "edge_config.json").exists()


def write_snapshot(shard_dir: str | Path, snapshot_path: str | Path) -> Path:
    """Tar a closed shard directory into ``snapshot_path`` (written aside, then renamed: atomic).

    Edge preallocates its files (WAL segments, storage pages: ~200 MB apparent for a few hundred
    points, a few hundred KB on disk), so GNU tar writes them as sparse members: Qdrant's unpacker
    (the ``tar`` crate, in Edge and the server alike) restores those. Python's tarfile, which cannot
    write sparse members, is the fallback where no GNU tar is installed.
    """
    shard_dir, snapshot_path = Path(shard_dir), Path(snapshot_path)
    if not _is_shard(shard_dir):
        raise FileNotFoundError(f"no Qdrant Edge shard at {shard_dir} (edge_config.json missing)")
    tmp = snapshot_path.with_name(f".{snapshot_path.name}.{uuid.uuid4().hex[:8]}")
    names = sorted(n for n in os.listdir(shard_dir) if not n.startswith("."))
    gnu_tar = shutil.which("tar")
    if gnu_tar:
        subprocess.run([gnu_tar, "--sparse", "--format=gnu", "-cf", str(tmp), "-C", str(shard_dir), *names],
                       check=True, capture_output=True)
    else:
        with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
            for name in names:
                tar.add(shard_dir / name, arcname=name)
    os.replace(tmp, snapshot_path)
    return snapshot_path


def _load(path: Path):
    from qdrant_edge import EdgeShard

    try:
        return EdgeShard.load(str(path))
    except Exception as e:  # the binding raises a bare Exception with the engine's message
        if "WouldBlock" in str(e) or "WAL" in str(e):
            raise IndexLockedError(
                f"Qdrant Edge shard {path} is already open in another process (a shard allows one process "
                "at a time). Stop the other writer, open it read-only (a private copy, as the router does), "
                "or use a Qdrant server via QDRANT_URL.") from None
        raise


class EdgeStore(PayloadScan):
    """A Qdrant Edge shard with ``dense`` + ``sparse`` named vectors. Open with :meth:`open`."""

    backend = "edge"

    def __init__(self, path: Path, shard, hnsw: HnswConfig, owned_dir: Path | None = None):
        self.path = path
        self.shard = shard              # None until ensure_collection creates it
        self.hnsw = hnsw
        self.location = str(path)
        self.sparse_config = None       # the index's SparseConfig, set by open_index for query encoding
        self._owned_dir = owned_dir     # a private copy to delete on close

    @classmethod
    def open(cls, path: str | Path, *, hnsw: HnswConfig | None = None, read_only: bool = False,
             snapshot: str | Path | None = None) -> EdgeStore:
        """A writable shard at ``path`` (created by :meth:`ensure_collection` if missing), or with
        ``read_only`` a private copy: unpacked from ``snapshot`` if given, else copied from ``path``."""
        from qdrant_edge import EdgeShard

        path, hnsw = Path(path), hnsw or HnswConfig()
        if not read_only:
            return cls(path, _load(path) if _is_shard(path) else None, hnsw)
        private = Path(tempfile.mkdtemp(prefix="qdrant-edge-"))
        try:
            if snapshot is not None:
                EdgeShard.unpack_snapshot(str(snapshot), str(private))
            elif _is_shard(path):
                shutil.copytree(path, private, dirs_exist_ok=True)
            else:
                raise FileNotFoundError(f"no Qdrant Edge shard at {path} (edge_config.json missing); "
                                        "run the rag.index step first")
            return cls(path, _load(private), hnsw, owned_dir=private)
        except BaseException:
            shutil.rmtree(private, ignore_errors=True)
            raise

    def close(self) -> None:
        if self.shard is not None:
            self.shard.close()
            self.shard = None
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- schema --------------------------------------------------------------------
    def _config(self, dims: int):
        import qdrant_edge as qe

        h = self.hnsw
        return qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dims, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            hnsw_config=qe.HnswIndexConfig(m=h.m, ef_construct=h.ef_construct,
                                           full_scan_threshold=h.full_scan_threshold_kb),
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=h.indexing_threshold_kb))

    def ensure_collection(self, dims: int) -> bool:
        """Create the shard if missing (or recreate it if its dense size differs). True if created."""
        from qdrant_edge import EdgeShard

        if self.shard is not None:
            config = self.shard_config()
            dense = config.get("vectors", {}).get(DENSE, {})
            if dense.get("size") == dims and SPARSE in config.get("sparse_vectors", {}):
                return False
            self.shard.close()
            shutil.rmtree(self.path)
        self.shard = EdgeShard.create(str(self.path), self._config(dims))
        return True

    def shard_config(self) -> dict:
        """The shard's ``edge_config.json`` (vectors, sparse vectors, HNSW, optimizers)."""
        return json.loads((self.path if self._owned_dir is None else self._owned_dir).joinpath(
            "edge_config.json").read_text())

    # -- writing -------------------------------------------------------------------
    def payloads(self, fields: list[str] | bool = True):
        """``(id, payload)`` of every point (payload cut to ``fields``; False = none), page by page."""
        from qdrant_edge import ScrollRequest

        if self.shard is None:
            return
        offset = None
        while True:
            records, offset = self.shard.scroll(ScrollRequest(offset=offset, limit=_PAGE, with_payload=fields,
                                                              with_vector=False))
            for r in records:
                yield str(r.id), dict(r.payload or {})
            if offset is None:
                return



    def upsert(self, ids: list[str], dense: Iterable, sparse: Iterable[tuple[list[int], list[float]]],
               payloads: list[dict]) -> None:
        import qdrant_edge as qe

        points = [qe.Point(id=i, payload=p, vector={
            DENSE: [float(x) for x in d], SPARSE: qe.SparseVector(indices=list(si), values=list(sv))})
            for i, d, (si, sv), p in zip(ids, dense, sparse, payloads, strict=True)]
        self.shard.update(qe.UpdateOperation.upsert_points(points))

    def delete(self, ids: Iterable[str]) -> None:
        from qdrant_edge import UpdateOperation

        ids = list(ids)
        for i in range(0, len(ids), _PAGE):
            self.shard.update(UpdateOperation.delete_points(ids[i:i + _PAGE]))

    def count(self) -> int:
        from qdrant_edge import CountRequest

        return self.shard.count(CountRequest(exact=True))

    def finish(self) -> dict:
        """Build the HNSW graph and merge segments (Edge's optimizers, run here), then flush."""
        optimized = self.shard.optimize()
        self.shard.flush()
        info = self.shard.info()
        return {"optimized": optimized, "segments": info.segments_count, "indexed_vectors": info.indexed_vectors_count}

    # -- searching -----------------------------------------------------------------
    def _params(self):
        from qdrant_edge import SearchParams

        return SearchParams(hnsw_ef=self.hnsw.ef)

    def _query(self, k: int, with_vectors: bool, **kw) -> list[Hit]:
        from qdrant_edge import QueryRequest

        points = self.shard.query(QueryRequest(limit=k, with_payload=True,
                                               with_vector=[DENSE] if with_vectors else False, **kw))
        return [Hit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {}),
                    dense=(p.vector or {}).get(DENSE) if with_vectors else None) for p in points]

    def search_dense(self, vector, k: int, with_vectors: bool = False) -> list[Hit]:
        from qdrant_edge import Query

        return self._query(k, with_vectors, query=Query.Nearest([float(x) for x in vector], using=DENSE),
                           params=self._params())

    def search_sparse(self, sparse: tuple[list[int], list[float]], k: int) -> list[Hit]:
        from qdrant_edge import Query, SparseVector

        return self._query(k, False, query=Query.Nearest(SparseVector(list(sparse[0]), list(sparse[1])), using=SPARSE))

    def search_hybrid(self, vector, sparse: tuple[list[int], list[float]], k: int, prefetch_k: int,
                      with_vectors: bool = False, fusion: FusionConfig | None = None) -> list[Hit]:
        """Dense and sparse candidates (``prefetch_k`` each) fused by Qdrant's weighted reciprocal-rank fusion."""
        from qdrant_edge import Fusion, Prefetch, Query, SparseVector

        fusion = fusion or FusionConfig()
        weights = [fusion.dense_weight]
        prefetches = [Prefetch(limit=prefetch_k, query=Query.Nearest([float(x) for x in vector], using=DENSE),
                               params=self._params())]
        if sparse[0]:  # a query with no indexable word has no sparse branch
            prefetches.append(Prefetch(limit=prefetch_k, query=Query.Nearest(
                SparseVector(list(sparse[0]), list(sparse[1])), using=SPARSE)))
            weights.append(fusion.sparse_weight)
        return self._query(k, with_vectors, prefetches=prefetches, query=Fusion.Rrf(k=fusion.rrf_k, weights=weights))
