"""Shadow and A/B in the live router, driven by ``online_eval.experiment_arms``, in front of the session's
real vLLM app (tests/serve/conftest.py): the champion is the base model, the candidate its LoRA adapter
``tiny-sft`` on the same engine, and the judge is that engine too (constrained to A/B/T, both orders).

- shadow: every user gets the champion's answer; a copy goes to the candidate and the position-swapped
  pairwise verdict lands on the champion's trace as the ``shadow_pairwise`` assessment.
- A/B: a user stays on one arm (sticky on OpenAI's ``user``), every trace records its arm, and
  /online/metrics reports per-arm thumbs-up rate, latency and error rate with 95% CIs.
"""
from __future__ import annotations

import json
import os
import time

import httpx
import pytest

import mlflow
from tests.fixtures.mlflow_store import sqlite_uri
from tests.serve.llm_app_settings import API_KEY, API_KEY_ENV

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {API_KEY}"}
QUESTIONS = ["What does the assert statement do?", "How does a while loop end?", "What does the with statement do?",
             "What is a lambda?"]


def router_app(llm_app, rag_index_dir, tiny_model_dir, online_dir, arms: dict):
    from ray import serve

    from components.eval.config import JudgeConfig
    from serve.online_eval.config import OnlineEvalConfig
    from serve.router.app import build_router
    from serve.router.config import RouterConfig

    os.environ[API_KEY_ENV] = API_KEY
    judge = JudgeConfig(base_url=llm_app["url"], model="tiny", api_key_env=API_KEY_ENV, constrained_choice=True,
                        max_tokens=2)
    online = OnlineEvalConfig(tracking_uri=sqlite_uri(online_dir), embed_queries=False, sample_rate=1.0,
                              judge_rate=0.0, judge=judge, feedback_path=str(online_dir / "feedback.jsonl"),
                              experiment_arms=arms)
    config = RouterConfig(index_dir=str(rag_index_dir), fallback="generate", max_source_chars=300,
                          tokenizer=str(tiny_model_dir), max_model_len=512, default_max_tokens=16, num_cpus=0.25,
                          online_eval=online)
    handle = serve.get_deployment_handle(llm_app["deployment"], app_name=llm_app["app_name"])
    return build_router(config, handle, api_key_env=API_KEY_ENV)


ARMS = {"ragshadow": {"mode": "shadow", "candidate_share": 1.0, "candidate_model": "tiny-sft"},
        "ragab": {"mode": "ab", "candidate_share": 0.5, "candidate_model": "tiny-sft"}}


@pytest.fixture(scope="module")
def arm_routers(llm_app, rag_index_dir, tiny_model_dir, tmp_path_factory):
    """name -> (url, its online store's folder): the shadow and the A/B router, started together (one
    `serve.run_many`, so their replicas' start-up overlaps)."""
    from ray import serve
    from ray.serve.api import RunTarget
    from ray.serve.context import _get_global_client

    dirs = {name: tmp_path_factory.mktemp(name) for name in ARMS}
    serve.run_many([RunTarget(target=router_app(llm_app, rag_index_dir, tiny_model_dir, dirs[name], arms),
                              name=name, route_prefix=f"/{name}") for name, arms in ARMS.items()])
    port = _get_global_client().http_config.port
    yield {name: (f"http://127.0.0.1:{port}/{name}", dirs[name]) for name in ARMS}
    for name in ARMS:
        serve.delete(name)


def ask(url: str, question: str, user: str, stream: bool = False) -> dict:
    body = {"model": "tiny", "user": user, "stream": stream, "messages": [{"role": "user", "content": question}]}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=AUTH, timeout=120) as r:
        assert r.status_code == 200, r.read()
        if not stream:
            return json.loads(r.read())
        chunks = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    return {"id": chunks[0]["id"], "rag": chunks[0]["rag"]}


def traces_by_request(tracking_uri: str, experiment: str = "llmflow-online") -> dict[str, object]:
    mlflow.set_tracking_uri(tracking_uri)
    exp = mlflow.get_experiment_by_name(experiment)
    traces = mlflow.search_traces(experiment_ids=[exp.experiment_id], return_type="list", max_results=500)
    return {t.info.tags.get("llmflow.request_id"): t for t in traces}


def wait_for(fn, timeout_s: float = 120.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(1)
    raise AssertionError("timed out waiting for the online loop")


def test_shadow_judges_the_candidate_on_the_champions_trace(arm_routers):
    url, tmp_path = arm_routers["ragshadow"]
    answers = [ask(url, q, user=f"u{i}", stream=i % 2 == 1) for i, q in enumerate(QUESTIONS)]
    assert all(a["rag"]["arm"] == "primary" for a in answers)  # users only ever see the champion
    ids = {a["id"] for a in answers}

    def judged():
        traces = traces_by_request(sqlite_uri(tmp_path))
        mine = [traces[i] for i in ids if i in traces]
        done = [t for t in mine if any(a.name == "shadow_pairwise" for a in t.info.assessments)]
        return done if len(done) == len(ids) else None

    for trace in wait_for(judged):
        assert trace.info.tags["arm"] == "primary"
        [verdict] = [a for a in trace.info.assessments if a.name == "shadow_pairwise"]
        assert verdict.feedback.value in ("a", "b", "tie") and verdict.source.source_type == "LLM_JUDGE"
        assert verdict.rationale.startswith("orders=")  # both orders asked: A/B/T each
        assert trace.info.tags["shadow.response_preview"] is not None
    metrics = httpx.get(f"{url}/online/metrics", headers=AUTH, timeout=30).json()["arms"]
    assert metrics["shadow"]["shadow_judged"] == len(ids)
    assert 0 <= metrics["shadow"]["shadow_candidate_score_ci_low"] <= metrics["shadow"]["shadow_candidate_score"]


def test_ab_is_sticky_per_user_and_reports_arms_with_confidence_intervals(arm_routers):
    url, tmp_path = arm_routers["ragab"]
    seen: dict[str, set] = {}
    ids: dict[str, str] = {}
    for i in range(8):
        user = f"user-{i}"
        for q in QUESTIONS[:2]:
            a = ask(url, q, user=user)
            seen.setdefault(user, set()).add(a["rag"]["arm"])
            assert a["model"] == ("tiny-sft" if a["rag"]["arm"] == "candidate" else "tiny")
            ids[a["id"]] = a["rag"]["arm"]
    assert all(len(arms) == 1 for arms in seen.values()), seen  # sticky: one arm per user
    assert {next(iter(a)) for a in seen.values()} == {"primary", "candidate"}, seen
    for rid, arm in ids.items():  # the champion's answers are liked, the candidate's not
        r = httpx.post(f"{url}/feedback", headers=AUTH, timeout=60,
                       json={"request_id": rid, "thumb": "up" if arm == "primary" else "down"})
        assert r.status_code == 200, r.text
    traces = wait_for(lambda: (t := traces_by_request(sqlite_uri(tmp_path))) and
                      all(i in t for i in ids) and t)
    assert all(traces[rid].info.tags["arm"] == arm for rid, arm in ids.items())
    metrics = httpx.get(f"{url}/online/metrics", headers=AUTH, timeout=30).json()["arms"]
    for arm, rate in (("primary", 1.0), ("candidate", 0.0)):
        m = metrics[arm]
        assert m["served"] == sum(a == arm for a in ids.values()) and m["error_rate"] == 0.0
        assert m["thumbs_up_rate"] == rate
        assert m["thumbs_up_rate_ci_low"] <= rate <= m["thumbs_up_rate_ci_high"]
        assert 0 < m["thumbs_up_rate_ci_high"] - m["thumbs_up_rate_ci_low"] < 1
        assert m["latency_mean_ms_ci_low"] <= m["latency_mean_ms"] <= m["latency_mean_ms_ci_high"]
        assert m["error_rate_ci_high"] > 0  # zero errors in a few requests does not prove a zero rate
