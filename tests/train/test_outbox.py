"""The outbox that carries Ray Train workers' files to the driver through an object store (fsspec's
in-memory filesystem here; tests/cluster/test_no_shared_disk.py runs it on S3 across nodes)."""
from __future__ import annotations

import json
import uuid

from components.train.outbox import CHUNK_LINES, Outbox, collect


def _uri() -> str:
    return f"memory://outbox-{uuid.uuid4().hex[:8]}/outputs"


def test_local_only_writes_local_files_and_sends_nothing(tmp_path):
    box = Outbox(tmp_path / "out")
    box.append("log.jsonl", {"step": 1})
    box.write_text("summary.json", "{}")
    box.close()
    assert (tmp_path / "out" / "log.jsonl").read_text() == '{"step": 1}\n'
    assert box.uri is None


def test_driver_gets_files_folders_and_logs_only_from_the_bucket(tmp_path):
    uri = _uri()
    box = Outbox(tmp_path / "worker", uri, rank=0)
    for step in range(1, CHUNK_LINES + 6):  # more than one part object
        box.append("train_metrics.jsonl", {"step": step})
    (tmp_path / "worker" / "model").mkdir()
    (tmp_path / "worker" / "model" / "config.json").write_text('{"a": 1}')
    box.put("model")
    box.write_text("train_summary.json", '{"steps": 5}')
    box.close()
    worker_copy = (tmp_path / "worker" / "train_metrics.jsonl").read_bytes()
    import shutil

    shutil.rmtree(tmp_path / "worker")  # another node's disk: gone from the driver's view
    driver = tmp_path / "driver"
    driver.mkdir()
    names = collect(uri, driver)
    assert sorted(names) == ["model", "train_metrics.jsonl", "train_summary.json"]
    assert (driver / "train_metrics.jsonl").read_bytes() == worker_copy
    assert (driver / "model" / "config.json").read_text() == '{"a": 1}'
    assert json.loads((driver / "train_summary.json").read_text()) == {"steps": 5}


def test_a_restarted_worker_adds_to_the_log_in_start_order(tmp_path):
    uri = _uri()
    first = Outbox(tmp_path / "node1", uri, rank=0)
    for step in (1, 2, 3):
        first.append("m.jsonl", {"step": step})
    first.flush()  # then the node dies: no close
    second = Outbox(tmp_path / "node2", uri, rank=0)  # the restart, on another node, from step 2
    for step in (3, 4):
        second.append("m.jsonl", {"step": step})
    second.close()
    driver = tmp_path / "driver"
    driver.mkdir()
    collect(uri, driver)
    steps = [json.loads(x)["step"] for x in (driver / "m.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 3, 4]


def test_lines_go_up_in_the_background_without_a_flush(tmp_path):
    import time

    uri = _uri()
    box = Outbox(tmp_path / "w", uri)
    box.append("m.jsonl", {"step": 1})
    deadline = time.time() + 10
    while not box.fs.glob(f"{box.path}/m.jsonl.parts/*") and time.time() < deadline:
        time.sleep(0.05)
    assert box.fs.glob(f"{box.path}/m.jsonl.parts/*"), "the background thread sent nothing"
    box.close()


def test_collect_of_nothing_is_empty(tmp_path):
    assert collect(_uri(), tmp_path) == []
