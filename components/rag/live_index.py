"""An Edge index that follows its ``rag.index`` artifact: re-indexing while the router serves.

The flow engine publishes a rebuilt artifact at the same path in one rename (the old one moved
aside first), and every build writes a new ``build_id`` into ``index.json``. A background thread
reads that id every ``check_every_s``; when it changes, it opens the new index as a private copy
(its snapshot unpacked, as any reader does) while requests keep searching the old one, then swaps
the two with one assignment. Each search runs on the store that was current when it started and
counts itself in and out of it; the old copy is closed once no search is left in it and
``grace_s`` has passed (not on a timer alone: a thread can stall for seconds on a loaded
machine, and a search on a closed shard fails). A failed check (the
artifact mid-rename, a half-written index) keeps the old index and retries at the next tick.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class LiveIndex:
    """The store interface of the current index of ``index_dir`` (search, count, doc_hashes, ...)."""

    def __init__(self, index_dir: str | Path, open_copy: Callable[[], object], check_every_s: float = 2.0,
                 grace_s: float = 5.0):
        """``open_copy()`` opens the artifact's current index as a private read-only store."""
        self.index_dir, self.check_every_s, self.grace_s = Path(index_dir), check_every_s, grace_s
        self._open_copy = open_copy
        self.build_id = self._read_build_id()
        self._current = open_copy()
        self._retired: list[tuple[object, float]] = []
        self._inflight: dict[int, int] = {}   # id(store) -> searches running in it
        self._count_lock = threading.Lock()
        self.num_swaps, self.last_error = 0, None
        self._lock = threading.Lock()  # one refresh at a time (the watcher, or a caller)
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="rag-index-watch", daemon=True)
        self._watcher.start()

    def _read_build_id(self) -> str | None:
        return json.loads((self.index_dir / "index.json").read_text()).get("build_id")

    @property
    def store(self):
        return self._current

    def _watch(self) -> None:
        while not self._stop.wait(self.check_every_s):
            try:
                self.refresh()
            except Exception as e:  # noqa: BLE001 -- keep serving the index we have; say why the new one did not load
                self.last_error = f"{type(e).__name__}: {e}"
                log.warning("index %s: rebuilt index not loaded, keeping the current one: %s",
                            self.index_dir, self.last_error)

    def refresh(self) -> bool:
        """Swap to the artifact's index if it was rebuilt since the last look; True if swapped."""
        with self._lock:
            self._close_retired()
            try:
                build_id = self._read_build_id()
            except (FileNotFoundError, json.JSONDecodeError):
                return False  # the artifact is being replaced right now: look again next tick
            if build_id == self.build_id:
                return False
            new = self._open_copy()
            old, self._current, self.build_id = self._current, new, build_id
            self._retired.append((old, time.monotonic()))
            self.num_swaps += 1
            return True

    def _close_retired(self) -> None:
        now, keep = time.monotonic(), []
        for store, since in self._retired:
            with self._count_lock:
                idle = self._inflight.get(id(store), 0) == 0
                if idle and now - since >= self.grace_s:
                    self._inflight.pop(id(store), None)
                    store.close()
                    continue
            keep.append((store, since))
        self._retired = keep

    def _call(self, method: str, *args, **kwargs):
        with self._count_lock:
            store = self._current
            self._inflight[id(store)] = self._inflight.get(id(store), 0) + 1
        try:
            return getattr(store, method)(*args, **kwargs)
        finally:
            with self._count_lock:
                self._inflight[id(store)] -= 1

    def close(self) -> None:
        self._stop.set()
        self._watcher.join(timeout=10)
        with self._lock:
            for store, _ in self._retired:
                store.close()
            self._retired = []
            self._current.close()

    def __enter__(self) -> LiveIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the store interface: each call on the store current when it starts --------
    @property
    def sparse_config(self):
        return self._current.sparse_config

    @property
    def location(self) -> str:
        return self._current.location

    def search_dense(self, *args, **kwargs):
        return self._call("search_dense", *args, **kwargs)

    def search_sparse(self, *args, **kwargs):
        return self._call("search_sparse", *args, **kwargs)

    def search_hybrid(self, *args, **kwargs):
        return self._call("search_hybrid", *args, **kwargs)

    def count(self) -> int:
        return self._call("count")

    def doc_hashes(self) -> dict[str, str]:
        return self._call("doc_hashes")

    def point_ids(self) -> set[str]:
        return self._call("point_ids")
