"""components/data/send_back.py: a writer on a node other than the driver's sends its files through
the bucket (here a local folder standing in for it) and the driver fetches them; on the driver's node,
or with nowhere to send, it writes in place."""
from __future__ import annotations

from pathlib import Path

import pytest

from components.data.send_back import receive, send_target, writer_folder
from components.data.shards import writer_node


def _write_two(folder: Path) -> None:
    (folder / "docs").mkdir(parents=True, exist_ok=True)
    (folder / "docs" / "part-000003.parquet").write_bytes(b"shard")
    (folder / "train").mkdir(parents=True, exist_ok=True)
    (folder / "train" / "shard-00003-000.bin").write_bytes(bytes(range(7)))


def test_a_writer_on_another_node_sends_its_files_and_the_driver_fetches_them(tmp_path):
    out, bucket = tmp_path / "driver_output", tmp_path / "bucket" / "shards"
    out.mkdir()
    send = {"uri": str(bucket), "driver_node": f"not-{writer_node()}"}  # this process is "another node"
    sent: list[str] = []
    with writer_folder(out, send, sent) as folder:
        assert folder != out
        _write_two(folder)
    assert sent == ["docs/part-000003.parquet", "train/shard-00003-000.bin"]
    assert not any(out.iterdir()), "the writer wrote into the driver's folder, which its node may not have"
    assert (bucket / "train" / "shard-00003-000.bin").read_bytes() == bytes(range(7))
    assert receive(out, send, sent) == 2
    assert (out / "docs" / "part-000003.parquet").read_bytes() == b"shard"
    assert (out / "train" / "shard-00003-000.bin").read_bytes() == bytes(range(7))


@pytest.mark.parametrize("send", [None, "driver's node"])
def test_a_writer_that_can_reach_the_driver_folder_writes_in_place(tmp_path, send):
    send = None if send is None else {"uri": str(tmp_path / "bucket"), "driver_node": writer_node()}
    sent: list[str] = []
    with writer_folder(tmp_path / "out", send, sent) as folder:
        assert folder == tmp_path / "out"
        _write_two(folder)
    assert sent == [] and not (tmp_path / "bucket").exists()
    assert receive(tmp_path / "out", send, sent) == 0


def test_files_sent_with_no_target_fail_loudly(tmp_path):
    with pytest.raises(AssertionError, match="nowhere to send"):
        receive(tmp_path, None, ["docs/part-000000.parquet"])


def test_send_target_only_on_an_object_store_root(tmp_path):
    from flows.engine.context import StepContext

    local = StepContext.for_test(tmp_path / "a")
    assert send_target(local) is None
    remote = StepContext(name="dedup", output=tmp_path / "b", scratch_uri="s3://bucket/root/.tmp/dedup-0123-resumable/")
    assert send_target(remote) == {"uri": "s3://bucket/root/.tmp/dedup-0123-resumable/shards",
                                   "driver_node": writer_node()}
