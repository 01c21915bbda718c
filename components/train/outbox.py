"""How Ray Train workers hand the step its files when the nodes share no disk.

On one machine (a local artifact root) a worker writes the step's files (metrics log, summary,
model/) straight into the step's temp dir, which is the driver's ``ctx.output``: nothing here copies
anything. On a cluster with an object-store root, rank 0 may run on another node, where the driver's
temp dir does not exist; there each worker writes into a node-local folder *and* sends the files to
an object-store folder (``<scratch_uri>/outputs``), and the driver ``collect``s them from there.

Append-only logs (one line per step, per worker start, per resume) are uploaded as parts, one set
per worker start (``<name>.parts/<start ns>-rank<r>-<pid>-<chunk>.jsonl``), so a worker restarted on
another node adds to the log instead of replacing what the killed one sent; ``collect`` joins the
parts in start order, which is what the local file would hold. Lines go up from a background
thread as they are written (a frozen or killed worker loses at most the line in flight, and the
training loop never waits on the network), and ``flush`` waits for them at checkpoints and the end.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

PARTS = ".parts"
CHUNK_LINES = 64  # lines per part object: each upload re-sends at most this many lines


class Outbox:
    def __init__(self, local_dir: str | Path, uri: str | None = None, rank: int = 0):
        self.local = Path(local_dir)
        self.local.mkdir(parents=True, exist_ok=True)
        self.uri = uri.rstrip("/") if uri else None
        self.start = f"{time.time_ns():020d}-rank{rank}-{os.getpid()}"
        self._lines: dict[str, list[str]] = {}
        self._dirty: set[tuple[str, int]] = set()
        self._lock, self._io = threading.Lock(), threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        if self.uri is not None:
            import fsspec

            self.fs, self.path = fsspec.core.url_to_fs(self.uri)
            threading.Thread(target=self._pump, daemon=True, name="llmflow-outbox").start()

    def append(self, name: str, record: dict) -> None:
        """One JSON line to ``name`` (local file; and, with a URI, to this start's part in the bucket)."""
        line = json.dumps(record) + "\n"
        with open(self.local / name, "a") as f:
            f.write(line)
        if self.uri is None:
            return
        with self._lock:
            lines = self._lines.setdefault(name, [])
            lines.append(line)
            self._dirty.add((name, (len(lines) - 1) // CHUNK_LINES))
        self._wake.set()

    def write_text(self, name: str, text: str) -> None:
        (self.local / name).write_text(text)
        self.put(name)

    def put(self, name: str) -> None:
        """Send the local file or folder ``name`` (already written) to the bucket; no-op without a URI."""
        if self.uri is None:
            return
        src = self.local / name
        if src.is_dir():
            self.fs.put(str(src) + "/", f"{self.path}/{name}", recursive=True)
        else:
            self.fs.put_file(str(src), f"{self.path}/{name}")

    def flush(self) -> None:
        """Block until every appended line is in the bucket."""
        if self.uri is not None:
            self._upload_dirty()

    def close(self) -> None:
        self.flush()
        self._closed = True
        self._wake.set()

    def _pump(self) -> None:
        while not self._closed:
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                self._upload_dirty()
            except Exception as e:  # noqa: BLE001 - flush() retries and raises on the training thread
                print(f"[outbox] upload to {self.uri} failed, retried at the next flush: {e}", flush=True)

    def _upload_dirty(self) -> None:
        with self._io:  # one upload at a time: a newer part is never overwritten by an older snapshot
            with self._lock:
                todo = [(name, chunk, "".join(self._lines[name][chunk * CHUNK_LINES:(chunk + 1) * CHUNK_LINES]))
                        for name, chunk in sorted(self._dirty)]
                self._dirty.clear()
            for i, (name, chunk, text) in enumerate(todo):
                try:
                    self.fs.pipe_file(f"{self.path}/{name}{PARTS}/{self.start}-{chunk:06d}.jsonl", text.encode())
                except Exception:
                    with self._lock:  # send them again next time
                        self._dirty.update((n, c) for n, c, _ in todo[i:])
                    raise


def ray_storage(uri: str) -> dict:
    """``RunConfig`` storage for an object-store folder (``s3://...``), through the same fsspec filesystem
    the artifact store uses (its endpoint and keys from the environment)."""
    import fsspec
    import pyarrow.fs

    fs, path = fsspec.core.url_to_fs(uri)
    return {"storage_path": path, "storage_filesystem": pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs))}


def remove(uri: str) -> None:
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def collect(uri: str, dest: str | Path) -> list[str]:
    """Download what workers sent to ``uri`` into ``dest`` (the driver's ``ctx.output``); logs sent in
    parts become one file. Returns the names written."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(uri.rstrip("/"))
    fs.invalidate_cache()  # workers on other processes wrote here since this process last listed
    dest = Path(dest)
    names = []
    for entry in sorted(fs.ls(root, detail=False)) if fs.exists(root) else []:
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        if name.endswith(PARTS):
            parts = sorted(fs.ls(entry, detail=False))
            target = dest / name.removesuffix(PARTS)
            target.write_bytes(b"".join(fs.cat_file(p) for p in parts))
        else:
            target = dest / name
            if target.is_dir():
                shutil.rmtree(target)  # a resumed step's earlier attempt
            if fs.isdir(entry):
                fs.get(entry + "/", str(target), recursive=True)
            else:
                fs.get_file(entry, str(target))
        names.append(target.name)
    return names
