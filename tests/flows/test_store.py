"""The commit protocol: nothing is complete until its marker lands with it."""
from __future__ import annotations

from flows.engine.store import MARKER, ArtifactStore
from flows.engine.context import StepContext


def test_commit_is_atomic_and_replaces(tmp_path):
    store = ArtifactStore(str(tmp_path / "root"))
    tmp = store.new_temp("s", "a" * 64)
    (tmp / "data.txt").write_text("v1")
    assert not store.is_complete("s", "a" * 64)
    store.commit(tmp, "s", "a" * 64, {"x": 1})
    assert store.is_complete("s", "a" * 64)
    tmp2 = store.new_temp("s", "a" * 64)
    (tmp2 / "data.txt").write_text("v2")
    uri = store.commit(tmp2, "s", "a" * 64, {"x": 2})
    assert (tmp_path / "root" / "s" / ("a" * 16) / "data.txt").read_text() == "v2"
    assert store.marker("s", "a" * 64)["x"] == 2 and uri.endswith("a" * 16)


def test_half_written_temp_is_never_complete(tmp_path):
    store = ArtifactStore(str(tmp_path))
    tmp = store.new_temp("s", "b" * 64)
    (tmp / "weights.bin").write_bytes(b"\0" * 10)  # a step killed here leaves only this
    assert not store.is_complete("s", "b" * 64)
    assert not (tmp / MARKER).exists()
    assert store.sweep_temps(min_age_s=0) == 1


def test_fsspec_memory_root_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMFLOW_CACHE", str(tmp_path / "cache"))
    store = ArtifactStore("memory://llmflow-test/root")
    tmp = store.new_temp("s", "c" * 64)
    (tmp / "f.txt").write_text("hello")
    store.commit(tmp, "s", "c" * 64, {"ok": True})
    assert store.marker("s", "c" * 64) == {"ok": True}
    local = store.local_path("s", "c" * 64)
    assert (local / "f.txt").read_text() == "hello"


def test_resumable_temp_is_the_same_on_every_attempt(tmp_path):
    store = ArtifactStore(str(tmp_path))
    first = store.new_temp("train", "d" * 64, reuse=True)
    (first / "checkpoints").mkdir()
    again = store.new_temp("train", "d" * 64, reuse=True)
    assert again == first and (again / "checkpoints").exists()
    assert store.new_temp("train", "d" * 64) != first  # ordinary steps start clean


def test_a_step_sees_where_its_inputs_live_in_the_store(tmp_path, monkeypatch):
    """On an object-store root a step reads a local copy of each input, and can hand its store URI to a
    process on another node (serve.rag gives the router the index's s3:// address, not this node's copy)."""
    from pydantic import BaseModel

    from flows.engine.registry import StepKind
    from flows.engine.runner import PlannedStep, _execute

    monkeypatch.setenv("LLMFLOW_CACHE", str(tmp_path / "cache"))
    store = ArtifactStore("memory://llmflow-test/inputs")
    up = store.new_temp("index", "e" * 64)
    (up / "index.json").write_text("{}")
    store.commit(up, "index", "e" * 64, {"ok": True})
    seen = {}

    class NoConfig(BaseModel):
        pass

    def run(ctx, config):
        seen["path"], seen["uri"] = ctx.input("index"), ctx.input_uri("index")

    step = PlannedStep("rag_serve", StepKind("test.reads_index", run, NoConfig, inputs=("index",)), NoConfig(),
                       "f" * 64, {"index": "index"}, store.uri("rag_serve", "f" * 64))
    _execute(step, "memory://llmflow-test/inputs", str(tmp_path), {"index": ("index", "e" * 64)}, None, None, None)
    assert seen["uri"] == "memory://llmflow-test/inputs/index/" + "e" * 16
    assert (seen["path"] / "index.json").exists() and str(seen["path"]).startswith(str(tmp_path / "cache"))
    # a local root: the URI is the local path
    ctx_uri = StepContext.for_test(tmp_path / "out", {"index": tmp_path / "idx"}).input_uri("index")
    assert ctx_uri == str(tmp_path / "idx")
