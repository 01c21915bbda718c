"""The artifact store on a real S3 API (moto on loopback): the commit protocol holds without a shared disk.

A writer SIGKILLed while it uploads (over an older complete artifact, as ``--force`` does) must leave
nothing that looks complete; a finished commit reads back on another "node" (a fresh local cache).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from flows.engine.store import MARKER, ArtifactStore
from tests.cluster.s3_server import BUCKET

pytestmark = pytest.mark.integration
ADDR = "e" * 64


def _store(tmp_path, name: str, monkeypatch) -> ArtifactStore:
    monkeypatch.setenv("LLMFLOW_CACHE", str(tmp_path / f"cache-{name}"))  # each "node" its own local cache
    return ArtifactStore(f"s3://{BUCKET}/{tmp_path.name}")


def test_commit_and_read_back_on_another_node(s3_endpoint, tmp_path, monkeypatch):
    writer = _store(tmp_path, "writer", monkeypatch)
    tmp = writer.new_temp("s", ADDR)
    (tmp / "sub").mkdir()
    (tmp / "sub" / "w.bin").write_bytes(b"\1" * 1000)
    (tmp / "a.txt").write_text("hello")
    assert not writer.is_complete("s", ADDR)
    uri = writer.commit(tmp, "s", ADDR, {"metrics": {"x": 1.0}})
    assert uri.startswith(f"s3://{BUCKET}/") and not tmp.exists()
    reader = _store(tmp_path, "reader", monkeypatch)
    assert reader.marker("s", ADDR) == {"metrics": {"x": 1.0}}
    local = reader.local_path("s", ADDR)
    assert (local / "a.txt").read_text() == "hello" and (local / "sub" / "w.bin").stat().st_size == 1000
    assert str(local).startswith(str(tmp_path / "cache-reader"))


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from flows.engine.store import ArtifactStore
    store = ArtifactStore(sys.argv[1])
    tmp = store.new_temp("s", sys.argv[2])
    for i in range(400):
        (tmp / f"part-{i:04d}.bin").write_bytes(bytes([i % 256]) * 2048)
    print("uploading", flush=True)
    store.commit(tmp, "s", sys.argv[2], {"version": 2})
    print("committed", flush=True)
""")


def test_writer_killed_mid_upload_leaves_nothing_complete(s3_endpoint, tmp_path, monkeypatch):
    store = _store(tmp_path, "first", monkeypatch)
    tmp = store.new_temp("s", ADDR)
    (tmp / "old.txt").write_text("v1")
    store.commit(tmp, "s", ADDR, {"version": 1})  # the artifact a --force run replaces
    assert store.is_complete("s", ADDR)

    env = {**os.environ, "LLMFLOW_CACHE": str(tmp_path / "cache-killed")}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, store.root_uri, ADDR], env=env, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "uploading"
    final = store.uri("s", ADDR)
    deadline = time.time() + 60
    while time.time() < deadline and not store.fs.glob(f"{final}/part-*.bin"):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # mid-upload: some new parts are in the bucket
    proc.wait(10)
    uploaded = store.fs.glob(f"{final}/part-*.bin")
    assert 0 < len(uploaded) < 400, f"the kill must land mid-upload ({len(uploaded)} of 400 parts uploaded)"
    assert not store.is_complete("s", ADDR)
    assert not store.fs.exists(f"{final}/{MARKER}")

    # The re-run commits over the leftovers; now it is complete and holds only the new files.
    tmp = store.new_temp("s", ADDR)
    (tmp / "new.txt").write_text("v3")
    store.commit(tmp, "s", ADDR, {"version": 3})
    assert store.marker("s", ADDR) == {"version": 3}
    assert sorted(p.rsplit("/", 1)[1] for p in store.fs.ls(final, refresh=True)) == [MARKER, "new.txt"]


def test_commit_removes_the_steps_checkpoints_in_the_bucket(s3_endpoint, tmp_path, monkeypatch):
    """A resumable step's scratch (Ray Train checkpoints) goes with the commit: a --force re-run starts
    from step 0 instead of resuming from the finished run's last checkpoint."""
    import s3fs

    store = _store(tmp_path, "writer", monkeypatch)
    scratch = store.scratch_uri("pretrain", ADDR)
    assert scratch == f"s3://{BUCKET}/{tmp_path.name}/.tmp/pretrain-{ADDR[:16]}-resumable"
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.pipe_file(f"{scratch}/pretrain-pretrain/step_000005/train_state.json".removeprefix("s3://"), b"{}")
    tmp = store.new_temp("pretrain", ADDR, reuse=True)
    (tmp / "a.txt").write_text("done")
    store.commit(tmp, "pretrain", ADDR, {"metrics": {}})
    fs.invalidate_cache()
    assert store.is_complete("pretrain", ADDR)
    assert not fs.exists(scratch.removeprefix("s3://"))
    assert ArtifactStore(str(tmp_path / "local")).scratch_uri("pretrain", ADDR) is None  # a local root has none
