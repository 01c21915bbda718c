"""Flows against a real `mlflow server` on loopback: lineage, fail-fast, and a server lost mid-run."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from components.tracking.mlflow_tracking import TrackingUnavailable, replay_spool, search_runs
from flows.engine.runner import FlowRunner
from flows.recipe import parse_recipe
from tests.fixtures.mlflow_store import start_mlflow_server, stop_mlflow_server

pytestmark = pytest.mark.integration


def test_flow_against_mlflow_server(diamond, tmp_path, mlflow_server, ray_local):
    diamond["tracking"] = {"tracking_uri": mlflow_server, "experiment": "server-test"}
    result = FlowRunner(parse_recipe(diamond), workdir=tmp_path, console=Console(quiet=True)).run()
    assert result.ok
    runs = search_runs(mlflow_server, "server-test")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result.run_id]
    assert sorted(r.data.tags["llmflow.step"] for r in children) == ["a", "b", "join", "left", "right"]
    assert all(r.info.status == "FINISHED" for r in children)


def test_unreachable_server_fails_fast(diamond, tmp_path):
    diamond["tracking"] = {"tracking_uri": "http://127.0.0.1:9"}
    t0 = time.time()
    with pytest.raises(TrackingUnavailable, match="unreachable"):
        FlowRunner(parse_recipe(diamond), workdir=tmp_path, console=Console(quiet=True)).run()
    assert time.time() - t0 < 15


@pytest.mark.slow  # ~80 s; the spool-and-replay logic is covered in CI by tests/flows/test_tracking.py
def test_server_lost_mid_run_loses_no_metric(diamond, tmp_path, ray_local):
    port = 18501
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    proc = start_mlflow_server(server_dir, port)
    uri = f"http://127.0.0.1:{port}"
    diamond["tracking"] = {"tracking_uri": uri, "experiment": "lost"}
    diamond["steps"]["join"]["config"]["num_metrics"] = 40  # 8 s of metric points
    runner = FlowRunner(parse_recipe(diamond), workdir=tmp_path, console=Console(quiet=True))
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("r", runner.run()))
    t.start()
    join_tmp = Path(runner.store.root) / ".tmp"
    deadline = time.time() + 120
    while time.time() < deadline and not any((d / "_metrics.jsonl").exists() for d in join_tmp.glob("join-*")):
        time.sleep(0.1)
    stop_mlflow_server(proc)  # the server dies while `join` is logging
    t.join(180)
    result = box["r"]
    assert result.ok, "training must go on without MLflow"
    join_dir = Path(result.outcomes["join"].uri)
    local = [line for line in (join_dir / "_metrics.jsonl").read_text().splitlines() if line]
    assert len(local) == 40
    spool = join_dir / "_metrics_pending.jsonl"
    assert spool.exists(), "metrics MLflow missed must be kept for replay"
    proc = start_mlflow_server(server_dir, port)
    try:
        replay_spool(result.outcomes["join"].run_id, uri, spool)
        from mlflow.tracking import MlflowClient

        history = MlflowClient(uri).get_metric_history(result.outcomes["join"].run_id, "series")
        assert sorted(int(m.step) for m in history) == list(range(40))
    finally:
        stop_mlflow_server(proc)
