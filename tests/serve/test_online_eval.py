"""The online loop against a real MLflow store and a real HTTP app serving a real (tiny) model."""
from __future__ import annotations

import asyncio
import json
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest

from components.artifacts import read_preferences
from components.eval.drift_monitor import DriftConfig
from components.eval.judge import Judge
from components.eval.prompt_templates import TEMPLATES
from components.tracking.prompts import PromptRef
from components.tracking.traces import get_experiment_tags
from serve.online_eval.ab import ArmRouter, openai_answer_fn
from serve.online_eval.config import ExperimentConfig, OnlineEvalConfig
from serve.online_eval.evaluator import OnlineEvaluator, RequestRecord
from tests.serve.hf_chat_server import BackgroundServer, build_app

pytestmark = pytest.mark.integration
PII = ["jane.doe@example.com", "415-555-0134", "4111 1111 1111 1111", "123-45-6789", "93.184.216.34"]
APP_PORT, HOOK_PORT = 18201, 18202


def make_eval(store, tmp_path, **kw) -> OnlineEvaluator:
    cfg = OnlineEvalConfig(tracking_uri=store, embed_queries=False, feedback_path=str(tmp_path / "fb.jsonl"), **kw)
    return OnlineEvaluator(cfg, prompt_versions={"llmflow-rag": "prompts:/llmflow-rag/3"})


def rec(i: int, query: str, response: str, **kw) -> RequestRecord:
    now = time.time_ns()
    return RequestRecord(request_id=f"req-{i}", query=query, response=response, start_time_ns=now - 5_000_000,
                         end_time_ns=now, **kw)


class RecordingRubricBackend:
    """A deterministic judge backend that keeps every prompt it was sent."""

    def __init__(self):
        self.prompts: list[str] = []

    def chat(self, prompt, max_tokens, choices=None):
        self.prompts.append(prompt)
        return '{"relevance": 4, "accuracy": 3, "completeness": 3, "clarity": 4}'


def test_pii_never_reaches_a_stored_trace(mlflow_uri, tmp_path):
    p = {n: PromptRef(n, 2, t) for n, t in TEMPLATES.items()}
    backend = RecordingRubricBackend()
    judge = Judge(backend, p["llmflow-judge-rubric"], p["llmflow-judge-pairwise"], p["llmflow-judge-criterion"])
    cfg = OnlineEvalConfig(tracking_uri=mlflow_uri, embed_queries=False, sample_rate=1.0, judge_rate=1.0,
                           feedback_path=str(tmp_path / "fb.jsonl"))
    ev = OnlineEvaluator(cfg, judge=judge, prompt_versions={"llmflow-rag": "prompts:/llmflow-rag/3"})
    text = f"I am {PII[0]}, phone {PII[1]}, card {PII[2]}, ssn {PII[3]}, host {PII[4]}"
    ev.submit(rec(1, "Help me: " + text, "Sure " + PII[0], messages=[{"role": "user", "content": text}],
                  context="ctx " + PII[1], retrieved_ids=["doc-1", PII[0]], prompt_tokens=12, completion_tokens=3))
    ev.flush()
    trace_id = ev.feedback(+1, comment=f"reach me at {PII[0]}", request_id="req-1")
    ev.close()
    stored = ev.traces.get_trace_json(trace_id)
    assert "<EMAIL>" in stored and "doc-1" in stored
    for secret in PII:
        assert secret not in stored
    # nothing anywhere in the store (sqlite file, artifact dirs) or the feedback log holds the raw PII
    blobs = [p.read_bytes() for p in Path(tmp_path).rglob("*") if p.is_file()]
    for secret in PII:
        assert not any(secret.encode() in b for b in blobs), secret
    trace = json.loads(stored)
    tags = trace["info"]["tags"]
    assert tags["prompt.llmflow-rag"] == "prompts:/llmflow-rag/3" and int(tags["pii.redactions"]) >= 5
    assert tags["judge"] == "scored" and tags["prompt.judge"] == "prompts:/llmflow-judge-rubric/2"
    rubric = [a for a in trace["info"]["assessments"] if a["assessment_name"] == "judge_rubric"]
    assert rubric[0]["feedback"]["value"]["accuracy"] == 3
    assert backend.prompts and not any(secret in q for q in backend.prompts for secret in PII)  # judge saw no PII
    root = next(s for s in trace["data"]["spans"] if not s.get("parent_span_id"))
    assert json.loads(root["attributes"]["prompt_tokens"]) == 12
    assert 4.0 < json.loads(root["attributes"]["latency_ms"]) < 6.0


def test_feedback_over_http_to_preference_pairs(mlflow_uri, tmp_path, tiny_model_dir):
    ev = make_eval(mlflow_uri, tmp_path, sample_rate=0.5)
    with BackgroundServer(build_app(tiny_model_dir, ev), APP_PORT) as url:
        ids = []
        for n in (4, 8, 12, 16):  # same question, different lengths → different answers
            r = httpx.post(url + "/v1/chat/completions", timeout=60, json={
                "model": "tiny", "max_tokens": n, "messages": [{"role": "user", "content": "What is a list?"}]})
            ids.append(r.headers["x-request-id"])
        answers = {}
        for rid, thumb in zip(ids, ["up", "down", "down", "up"]):
            r = httpx.post(url + "/feedback", json={"request_id": rid, "thumb": thumb, "comment": "c"}, timeout=60)
            assert r.status_code == 200, r.text
            answers[rid] = r.json()["trace_id"]
        r = httpx.post(url + "/feedback", json={"request_id": "nope", "thumb": "up"}, timeout=30)
        assert r.status_code == 404 and r.json()["error"]["code"] == 404 and "nope" in r.json()["error"]["message"]
        report = httpx.post(url + "/online/export", json={"out_dir": str(tmp_path / "prefs")}, timeout=60).json()
        metrics = httpx.get(url + "/online/metrics", timeout=30).json()
    ev.close()
    assert len(set(answers.values())) == 4  # every request got a trace, sampled or not
    assert metrics["arms"]["primary"]["thumbs_up_rate"] == 0.5
    rows = read_preferences(tmp_path / "prefs")  # the format rl.dpo / rl.reward_model read by default
    assert report["num_pairs"] == len(rows) == 2  # 2 up, 2 down: each request joins at most one pair
    fb = {json.loads(x)["trace_id"]: json.loads(x) for x in (tmp_path / "fb.jsonl").read_text().splitlines()}
    ups = {fb[answers[ids[i]]]["response"] for i in (0, 3)}
    downs = {fb[answers[ids[i]]]["response"] for i in (1, 2)}
    assert {r.chosen for r in rows} == ups and {r.rejected for r in rows} == downs
    assert all(r.prompt == "What is a list?" and r.source == "feedback" for r in rows)
    assert {t for r in rows for t in r.trace_ids} == set(answers.values())
    stored = json.loads(ev.traces.get_trace_json(answers[ids[1]]))
    thumbs = [a for a in stored["info"]["assessments"] if a["assessment_name"] == "user_feedback"]
    assert thumbs and thumbs[0]["feedback"]["value"] is False


class PreferLongerJudge:
    def chat(self, prompt, max_tokens, choices=None):
        a = prompt.split("Answer A: ")[1].split("\n\nAnswer B: ")[0]
        b = prompt.split("Answer B: ")[1].split("\n\nReply")[0]
        return "T" if len(a) == len(b) else ("A" if len(a) > len(b) else "B")


def test_ab_and_shadow_per_arm_metrics(mlflow_uri, tmp_path, tiny_model_dir):
    p = {n: PromptRef(n, 1, t) for n, t in TEMPLATES.items()}
    judge = Judge(PreferLongerJudge(), p["llmflow-judge-rubric"], p["llmflow-judge-pairwise"], p["llmflow-judge-criterion"])
    cfg = OnlineEvalConfig(tracking_uri=mlflow_uri, embed_queries=False, sample_rate=1.0, judge_rate=0.0,
                           feedback_path=str(tmp_path / "fb.jsonl"))
    ev = OnlineEvaluator(cfg, judge=judge)
    with BackgroundServer(build_app(tiny_model_dir), APP_PORT) as url:
        async def drive(router, n):
            outs = [await router.answer(f"r{router.config.mode}{i}", [{"role": "user", "content": f"q {i}"}])
                    for i in range(n)]
            await router.drain()
            return outs

        async def both():
            short, long_ = openai_answer_fn(url + "/v1", "primary", 4), openai_answer_fn(url + "/v1", "candidate", 12)
            ab = await drive(ArmRouter(ExperimentConfig(mode="ab", candidate_share=0.5), short, long_, ev), 16)
            shadow = await drive(ArmRouter(ExperimentConfig(mode="shadow", candidate_share=1.0), short, long_, ev), 6)
            return ab, shadow

        ab, shadow = asyncio.run(both())
    ev.flush()
    arms = {o["arm"] for o in ab}
    assert arms == {"primary", "candidate"}
    assert all(o["arm"] == "primary" and o["usage"]["completion_tokens"] <= 4 for o in shadow)  # never returned
    m = ev.arm_metrics()
    assert m["primary"]["n"] + m["candidate"]["n"] == 16 + 6
    assert m["candidate"]["n"] == sum(o["arm"] == "candidate" for o in ab) and "latency_p50_ms" in m["candidate"]
    assert m["shadow"]["n"] == 6 and m["shadow"]["shadow_candidate_win_rate"] + m["shadow"]["shadow_tie_rate"] == 1.0
    report = ev.export_preferences(tmp_path / "prefs")
    assert report["num_pairs_from_judge"] >= 1
    ev.close()


def bag_of_words_embed(texts: list[str]) -> np.ndarray:
    """A deterministic stand-in embedder: hashed bag of words, unit norm."""
    out = np.zeros((len(texts), 32), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().split():
            out[i, zlib.crc32(w.encode()) % 32] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)


def test_drift_alert_log_tag_and_webhook(mlflow_uri, tmp_path, caplog):
    from fastapi import FastAPI

    hooks: list[dict] = []
    hook_app = FastAPI()

    @hook_app.post("/hook")
    async def hook(body: dict):
        hooks.append(body)
        return {}

    hook_app.get("/health")(lambda: {"ok": True})
    drift = DriftConfig(reference_size=20, window_size=20, check_every=20)
    with BackgroundServer(hook_app, HOOK_PORT) as hook_url, caplog.at_level("WARNING", logger="llmflow.online_eval"):
        cfg = OnlineEvalConfig(tracking_uri=mlflow_uri, embed_queries=False, feedback_path=str(tmp_path / "fb.jsonl"),
                               sample_rate=1.0, drift=drift, alert_webhook=hook_url + "/hook", embed_batch=8)
        ev = OnlineEvaluator(cfg, embed_fn=bag_of_words_embed)
        for i in range(20):
            ev.submit(rec(i, f"what is a list {i % 3}", "a list is a mutable sequence"))
        ev.flush()
        assert get_experiment_tags(mlflow_uri, ev.traces.experiment_id).get("drift.query_length") is None
        for i in range(20, 40):
            ev.submit(rec(i, "explain quantum chromodynamics gluon confinement lattice " * 3, "no"))
        ev.flush()
        ev.close()
    tags = get_experiment_tags(mlflow_uri, ev.traces.experiment_id)
    assert tags["drift.query_length"] == "ALERT" and tags["drift.unknown_word_rate"] == "ALERT"
    assert tags["drift.query_embedding"] == "ALERT"  # batched embeddings reached the MMD test
    assert "drift[" in tags["drift.last_alert"]
    assert any("DRIFT ALERT" in r.message for r in caplog.records)
    assert {h["feature"] for h in hooks} >= {"query_length", "unknown_word_rate"}
