"""Shards written by data workers on nodes that do not share the driver's disk.

On one machine, or with a local artifact root, a writer task writes its block's files straight into
the step's temp dir (``out_dir``, the driver's ``ctx.output``). With an object-store root the cluster
may share no disk (``ctx.scratch_uri`` is set), and a writer scheduled on another node would write
into a folder of that node's own disk that the commit never uploads: the artifact would miss its
shards. There the writer writes into a temp dir of its own, sends each file to
``<scratch_uri>/shards/<path in the artifact>`` and reports the paths; the driver fetches them into
``ctx.output`` one file at a time (its memory does not grow) before the commit uploads the artifact.
The scratch folder is removed when the step commits. A writer on the driver's node writes in place.
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from components.data.shards import writer_node


def send_target(ctx) -> dict[str, str] | None:
    """What writer tasks need in order to send their files back (``uri``, ``driver_node``), or None
    when every node can write into ``ctx.output`` (a local artifact root)."""
    if ctx.scratch_uri is None:
        return None
    return {"uri": f"{ctx.scratch_uri.rstrip('/')}/shards", "driver_node": writer_node()}


@contextmanager
def writer_folder(out_dir: str | Path, send: dict[str, str] | None, sent: list[str]) -> Iterator[Path]:
    """The folder a writer writes its files into, by their paths in the artifact: ``out_dir`` itself, or,
    on a node other than the driver's when ``send`` is given, a temp dir whose files go to ``send["uri"]``
    when the block ends (their paths appended to ``sent``)."""
    if send is None or writer_node() == send["driver_node"]:
        yield Path(out_dir)
        return
    import fsspec

    fs, root = fsspec.core.url_to_fs(send["uri"])
    with tempfile.TemporaryDirectory(prefix="llmflow-shards-") as tmp:
        yield Path(tmp)
        for path in sorted(p for p in Path(tmp).rglob("*") if p.is_file()):
            rel = path.relative_to(tmp).as_posix()
            fs.makedirs(f"{root}/{rel}".rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(str(path), f"{root}/{rel}")
            sent.append(rel)


def receive(out_dir: str | Path, send: dict[str, str] | None, rel_paths: Iterable[str]) -> int:
    """Fetch files that writers on other nodes sent (their paths in the artifact) into ``out_dir``;
    returns how many."""
    rel_paths = list(rel_paths)
    if not rel_paths:
        return 0
    if send is None:
        raise AssertionError(f"writers sent {len(rel_paths)} files back but the step gave them nowhere to send them")
    import fsspec

    fs, root = fsspec.core.url_to_fs(send["uri"])
    for rel in rel_paths:
        dest = Path(out_dir) / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(f"{root}/{rel}", str(dest))
    return len(rel_paths)
