"""Where artifacts live, and the commit protocol that makes a half-written one impossible to mistake.

A step writes into a private temporary directory; only when its function returns does
the engine write the completion marker ``_COMPLETE.json`` *into* that directory and then
move it into place with one atomic rename (local root). For object stores (any fsspec URI:
``s3://`` on a cluster, where nodes share no disk) a replaced artifact loses its marker first,
then the files are uploaded and the marker last. An artifact is complete iff its marker
exists; anything else under the root (a killed step's leftovers) is ignored and swept.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

MARKER = "_COMPLETE.json"


class ArtifactStore:
    def __init__(self, root: str, workdir: str | Path | None = None):
        self.remote = "://" in root and not root.startswith("file://")
        if self.remote:
            import fsspec

            self.fs, self.root = fsspec.core.url_to_fs(root)
            self.root_uri = root.rstrip("/")
            self.local_cache = Path(os.environ.get("LLMFLOW_CACHE", Path.home() / ".cache" / "llmflow"))
        else:
            path = Path(root.removeprefix("file://"))
            self.root = (Path(workdir or os.getcwd()) / path).resolve()
            self.root_uri = str(self.root)

    # -- addressing ----------------------------------------------------------------
    def uri(self, step: str, address: str) -> str:
        return f"{self.root_uri}/{step}/{address[:16]}"

    def marker(self, step: str, address: str) -> dict[str, Any] | None:
        path = f"{self.uri(step, address)}/{MARKER}"
        if self.remote:
            if not self.fs.exists(path):
                return None
            return json.loads(self.fs.cat_file(path))
        p = Path(path)
        return json.loads(p.read_text()) if p.exists() else None

    def is_complete(self, step: str, address: str) -> bool:
        return self.marker(step, address) is not None

    # -- reading -------------------------------------------------------------------
    def local_path(self, step: str, address: str) -> Path:
        """A local directory holding the artifact (downloaded once for remote roots)."""
        if not self.remote:
            return Path(self.uri(step, address))
        local = self.local_cache / step / address[:16]
        if not (local / MARKER).exists():
            tmp = local.with_name(local.name + f".part-{uuid.uuid4().hex[:8]}")
            self.fs.get(self.uri(step, address) + "/", str(tmp), recursive=True)
            try:
                tmp.rename(local)
            except OSError:  # another process of this node (a second Ray Train worker) got there first
                shutil.rmtree(tmp, ignore_errors=True)
                if not (local / MARKER).exists():
                    raise
        return local

    # -- writing -------------------------------------------------------------------
    def scratch_uri(self, step: str, address: str) -> str | None:
        """Where a step keeps state every node must see (Ray Train checkpoints, files its workers send
        back): under the root's ``.tmp/`` on an object store; None on a local root, where the step's temp
        dir serves. The same folder on every attempt, so a resumable step finds its checkpoints."""
        if not self.remote:
            return None
        return f"{self.root_uri}/.tmp/{step}-{address[:16]}-resumable"

    def new_temp(self, step: str, address: str, reuse: bool = False) -> Path:
        """A private directory to write the artifact into; ``reuse`` returns the same one on every
        attempt (for steps that resume from checkpoints they left there)."""
        base = (self.root if not self.remote else self.local_cache) / ".tmp"
        tmp = base / (f"{step}-{address[:16]}-resumable" if reuse else f"{step}-{address[:16]}-{uuid.uuid4().hex[:8]}")
        tmp.mkdir(parents=True, exist_ok=reuse)
        return tmp

    def commit(self, tmp: Path, step: str, address: str, record: dict[str, Any]) -> str:
        """Publish ``tmp`` as the artifact; replaces an existing one (``--force``)."""
        (tmp / MARKER).write_text(json.dumps(record, indent=2, default=str))
        final = self.uri(step, address)
        if self.remote:
            marker = tmp / MARKER
            data = marker.read_bytes()
            marker.unlink()
            if self.fs.exists(final):
                # The old marker goes first: a writer killed while deleting or uploading leaves
                # files without a marker (incomplete), never a marker over a mix of old and new files.
                if self.fs.exists(f"{final}/{MARKER}"):
                    self.fs.rm_file(f"{final}/{MARKER}")
                self.fs.rm(final, recursive=True)
            self.fs.put(str(tmp) + "/", final, recursive=True)
            self.fs.pipe_file(f"{final}/{MARKER}", data)
            shutil.rmtree(tmp, ignore_errors=True)
            # A committed step's checkpoints are done with; left there, a --force re-run would resume
            # from the last step and train nothing.
            scratch = self.scratch_uri(step, address)
            if self.fs.exists(scratch):
                self.fs.rm(scratch, recursive=True)
            return final
        dest = Path(final)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            # Move the old one aside first: the new artifact appears in one rename.
            trash = tmp.parent / f"old-{uuid.uuid4().hex[:8]}"
            dest.rename(trash)
            tmp.rename(dest)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(dest)
        return final

    def sweep_temps(self, min_age_s: float = 6 * 3600) -> int:
        """Remove leftovers of killed steps (never complete, so never read).

        Only old ones: a young temp dir may belong to a flow running beside this one.
        """
        import time

        base = (self.root if not self.remote else self.local_cache) / ".tmp"
        if not base.exists():
            return 0
        n = 0
        for d in base.iterdir():
            if time.time() - d.stat().st_mtime > min_age_s:
                shutil.rmtree(d, ignore_errors=True)
                n += 1
        return n


def open_artifact(uri: str) -> Path:
    """A committed artifact's local directory from its URI (``<root>/<step>/<address>``, as the run
    summary and lineage print it): a local path as is; on an object store (``s3://``) downloaded
    once into this node's cache, so a service on any node opens what a step on another node wrote."""
    if "://" not in uri or uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    root, step, address = uri.rstrip("/").rsplit("/", 2)
    store = ArtifactStore(root)
    if not store.is_complete(step, address):
        raise FileNotFoundError(f"{uri} is not a complete artifact (no {MARKER}): point at a committed "
                                "step output, e.g. the uri `llmflow run` printed for it")
    return store.local_path(step, address)
