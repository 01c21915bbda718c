"""flywheel.export and flywheel.decide as a flow runs them (StepContext.for_test), against a rag endpoint.json
whose logs are the online loop's files and whose metrics URL is a real local HTTP server."""
from __future__ import annotations

import json
import threading
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from components.artifacts import Endpoint, read_preferences
from components.eval.preferences import FeedbackRecord, JudgedPair
from flows.engine.context import StepContext
from serve.online_eval.evaluator import ArmStats
from serve.steps.flywheel import WATERMARK, run_decide, run_export
from serve.steps.flywheel_config import FlywheelDecideConfig, FlywheelExportConfig

METRICS_PORT = 18700


def votes(n: int, start: int = 0) -> list[FeedbackRecord]:
    """n questions, each answered twice: the answer naming its source liked, the other not."""
    out = []
    for i in range(start, start + n):
        q = f"question {i}?"
        out += [FeedbackRecord(f"tr-{i}-a", q, f"From [1] topic{i}: yes.", 1, user="key:a"),
                FeedbackRecord(f"tr-{i}-b", q, "Maybe.", -1, user="key:a")]
    return out


def append(path, rows) -> None:
    with open(path, "a") as f:
        f.writelines(json.dumps(asdict(r)) + "\n" for r in rows)


@pytest.fixture
def rag_endpoint(tmp_path):
    out = tmp_path / "rag"
    Endpoint(served="rag", url=f"http://127.0.0.1:{METRICS_PORT}/v1", health_url="h", app_name="a",
             llm_url="http://llm/v1", online_metrics_url=f"http://127.0.0.1:{METRICS_PORT}/online/metrics",
             feedback_path=str(tmp_path / "online" / "feedback.jsonl")).write(out)
    (tmp_path / "online").mkdir()
    return out


def export(tmp_path, rag, name, **kw):
    ctx = StepContext.for_test(tmp_path / name, {"rag": rag})
    return ctx, run_export(ctx, FlywheelExportConfig(**kw))


def test_a_turn_exports_new_votes_with_provenance_and_too_few_stop(tmp_path, rag_endpoint):
    log = tmp_path / "online" / "feedback.jsonl"
    append(log, votes(3))
    append(log.with_name("feedback_judged_pairs.jsonl"), [JudgedPair("q?", "a1", "a2", "b", "tr-j")])
    with pytest.raises(ValueError, match=r"turn stopped: 4 preference pairs .* fewer than min_pairs=5"):
        export(tmp_path, rag_endpoint, "t0", min_pairs=5)
    _, report = export(tmp_path, rag_endpoint, "t1", min_pairs=4)
    assert report["num_pairs"] == 4 and report["num_pairs_from_judge"] == 1
    rows = read_preferences(tmp_path / "t1")
    assert {tuple(r.trace_ids) for r in rows} == {("tr-0-a", "tr-0-b"), ("tr-1-a", "tr-1-b"), ("tr-2-a", "tr-2-b"),
                                                  ("tr-j",)}
    assert json.loads((tmp_path / "t1" / "turn_range.json").read_text()) == {"feedback": [0, 6], "judged": [0, 1]}


class Metrics(BaseHTTPRequestHandler):
    body: dict = {}

    def do_GET(self):
        raw = json.dumps(self.body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


def arms(wins: int, losses: int) -> dict:
    champion, candidate, shadow = ArmStats(), ArmStats(), ArmStats()
    shadow.shadow.update({"b": wins, "a": losses})
    for s in (champion, candidate):
        s.served, s.thumbs = 50, {"up": 8, "down": 4}
    return {"arms": {"primary": champion.summary(), "candidate": candidate.summary(), "shadow": shadow.summary()},
            "drift": {}}


@pytest.mark.parametrize(("wins", "losses", "action"), [(40, 10, "promote"), (24, 26, "rollback"), (3, 1, "wait")])
def test_decide_commits_the_turns_votes_only_once_the_evidence_is_in(tmp_path, rag_endpoint, wins, losses, action):
    log = tmp_path / "online" / "feedback.jsonl"
    append(log, votes(4))
    export(tmp_path, rag_endpoint, "turn", min_pairs=1)
    Metrics.body = arms(wins, losses)
    server = ThreadingHTTPServer(("127.0.0.1", METRICS_PORT), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ctx = StepContext.for_test(tmp_path / "decide", {"rag": rag_endpoint, "prefs": tmp_path / "turn"})
        out = run_decide(ctx, FlywheelDecideConfig())
    finally:
        server.shutdown()
        server.server_close()
    decision = json.loads((tmp_path / "decide" / "decision.json").read_text())
    assert decision["action"] == action and decision["reasons"]
    assert out["promote"] == float(action == "promote")
    mark = log.with_name(WATERMARK)
    if action == "wait":
        assert not mark.exists()  # the next turn sees these votes again
    else:
        assert json.loads(mark.read_text())["feedback"] == 8
        append(log, votes(2, start=10))  # the next turn sees only what came after
        _, report = export(tmp_path, rag_endpoint, "next", min_pairs=1)
        assert report["num_feedback"] == 4 and report["num_pairs"] == 2


def test_rollback_gives_the_alias_back_and_promote_keeps_lineage_to_the_votes(mlflow_uri):
    from components.eval.config import GateConfig
    from components.eval.gate import run_gate
    from components.tracking import registry
    from serve.steps.flywheel import move_aliases

    gate_config = GateConfig(metric="rag_f1", registered_model="flywheel-test")
    run_gate(mlflow_uri, gate_config, {"rag_f1": 0.2}, "/models/v1")  # v1 becomes champion
    # The offline gate promotes v2 at once; the live evidence then says no: rollback restores v1.
    gate = run_gate(mlflow_uri, gate_config, {"rag_f1": 0.3}, "/models/v2")
    assert gate["promoted"] and registry.version_by_alias(mlflow_uri, "flywheel-test", "champion").version == "2"
    assert move_aliases(mlflow_uri, gate, "rollback", ["tr-1"]) == {"champion": "1", "was": "1"}
    assert registry.version_by_alias(mlflow_uri, "flywheel-test", "champion").version == "1"
    move_aliases(mlflow_uri, gate, "promote", ["tr-1", "tr-2"])
    v2 = registry.version_by_alias(mlflow_uri, "flywheel-test", "champion")
    assert v2.version == "2" and v2.tags["flywheel.trace_ids"] == "tr-1,tr-2"
    assert v2.tags["flywheel.decision"] == "promote"


@pytest.mark.parametrize(("wins", "losses", "skipped", "model"), [(40, 10, False, "flywheel-1"),
                                                                   (24, 26, False, "sft"), (40, 10, True, "sft")])
def test_decide_with_a_trial_switches_the_live_router(tmp_path, wins, losses, skipped, model):
    from serve.router import control
    from serve.router.control import RoutingState

    path = tmp_path / "router_control.json"
    rag = tmp_path / "rag"
    Endpoint(served="rag", url=f"http://127.0.0.1:{METRICS_PORT}/v1", health_url="h", app_name="a", llm_url="l",
             online_metrics_url=f"http://127.0.0.1:{METRICS_PORT}/online/metrics", control_path=str(path)).write(rag)
    control.deploy(path, RoutingState(model="sft"))
    control.switch(path, "ab", arms={"mode": "ab", "candidate_model": "flywheel-1"})
    trial = tmp_path / "trial"
    trial.mkdir()
    (trial / "trial.json").write_text(json.dumps({"skipped": "offline gate: f1 fell"} if skipped
                                                 else {"candidate_model": "flywheel-1"}))
    Metrics.body = arms(wins, losses)
    server = ThreadingHTTPServer(("127.0.0.1", METRICS_PORT), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        run_decide(StepContext.for_test(tmp_path / "decide", {"rag": rag, "trial": trial}), FlywheelDecideConfig())
    finally:
        server.shutdown()
        server.server_close()
    decision = json.loads((tmp_path / "decide" / "decision.json").read_text())
    state = control.current(path)
    assert state.model == model, decision
    if skipped:  # the gate's reason is the decision; the router was never switched to the candidate's traffic
        assert decision == {**decision, "action": "rollback", "reasons": ["offline gate: f1 fell"]}
        assert state.arms.mode == "ab"  # untouched: flywheel.trial did not start an arm for it
    else:
        assert state.arms.mode == "off"
