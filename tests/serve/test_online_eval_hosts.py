"""The two ways the loop runs outside the ingress's threads: a child process and a Serve replica."""
from __future__ import annotations

import json
import time
from dataclasses import asdict

import pytest

from serve.online_eval.config import OnlineEvalConfig
from serve.online_eval.evaluator import RequestRecord

pytestmark = pytest.mark.integration


def _record(i: int) -> RequestRecord:
    now = time.time_ns()
    return RequestRecord(request_id=f"h-{i}", query=f"what is a dict? mail me at a{i}@b.com", response="a mapping",
                         start_time_ns=now - 1_000_000, end_time_ns=now)


def _stored(uri: str, trace_id: str) -> dict:
    from components.tracking.traces import TraceLogger

    return json.loads(TraceLogger(uri, "llmflow-online").get_trace_json(trace_id))


def test_process_host_round_trip(mlflow_uri, tmp_path):
    from serve.online_eval.process import OnlineEvalProcess

    ev = OnlineEvalProcess(OnlineEvalConfig(tracking_uri=mlflow_uri, sample_rate=1.0, embed_queries=False,
                                            feedback_path=str(tmp_path / "fb.jsonl")))
    try:
        for i in range(3):
            ev.submit(_record(i))
        ev.flush()
        assert ev.counters()["processed"] == 3
        trace_id = ev.feedback(-1, "wrong", request_id="h-1")
        with pytest.raises(KeyError):
            ev.feedback(1, request_id="missing")
    finally:
        ev.close()
    stored = _stored(mlflow_uri, trace_id)
    assert stored["info"]["tags"]["llmflow.request_id"] == "h-1" and "a1@b.com" not in json.dumps(stored)


def test_serve_deployment_submit_is_fire_and_forget(ray_local, mlflow_uri, tmp_path):
    from ray import serve

    from serve.online_eval.app import online_eval_deployment

    cfg = OnlineEvalConfig(tracking_uri=mlflow_uri, sample_rate=1.0, embed_queries=False,
                           feedback_path=str(tmp_path / "fb.jsonl"))
    handle = serve.run(online_eval_deployment(cfg), name="online-eval-test", route_prefix=None)
    try:
        for i in range(3):
            handle.submit.remote(asdict(_record(i)))  # not awaited: the ingress never waits on the loop
        counters = handle.flush.remote().result(timeout_s=120)
        assert counters["processed"] == 3
        trace_id = handle.feedback.remote(1, "ok", "h-2").result(timeout_s=120)
    finally:
        serve.delete("online-eval-test")
    assert _stored(mlflow_uri, trace_id)["info"]["tags"]["llmflow.request_id"] == "h-2"
