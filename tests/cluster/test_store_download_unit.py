"""Two processes of one node (two Ray Train workers) open the same artifact of an object-store root at
once: the one that finishes its download second keeps the first one's copy instead of failing."""
from __future__ import annotations

import uuid
from pathlib import Path

from flows.engine.store import MARKER, ArtifactStore

ADDR = "d" * 64


def test_second_download_of_one_artifact_on_a_node_keeps_the_first(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMFLOW_CACHE", str(tmp_path / "cache"))
    store = ArtifactStore(f"memory://race-{uuid.uuid4().hex[:8]}")
    tmp = store.new_temp("tokens", ADDR)
    (tmp / "a.bin").write_bytes(b"x")
    store.commit(tmp, "tokens", ADDR, {"step": "tokens"})
    local = store.local_cache / "tokens" / ADDR[:16]
    real_rename = Path.rename

    def rename_after_the_other_worker(self, target):
        if Path(target) == local and not local.exists():
            store.fs.get(store.uri("tokens", ADDR) + "/", str(local), recursive=True)  # it renamed first
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename_after_the_other_worker)
    assert store.local_path("tokens", ADDR) == local
    assert (local / MARKER).exists() and (local / "a.bin").read_bytes() == b"x"
    assert [p.name for p in local.parent.iterdir()] == [local.name]  # no half copy left beside it
