"""The RAG router live on Ray Serve over HTTP, in front of an echoing fake LLM deployment.

The fake echoes the last message it receives, so the tests see exactly which prompt the
router built. Two router replicas serve one local-mode index (the lock is designed around:
each replica reads a private snapshot). Serve HTTP on 18100 unless Serve already runs
(another test module started it), in which case the router joins it under /rag. Every route
but /health takes the bearer key; the online loop (feedback) writes to a sqlite MLflow store.
"""
from __future__ import annotations

import asyncio
import json
import os
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from ray import serve

from serve.router.app import build_router
from serve.router.config import RouterConfig
from tests.fixtures.mlflow_store import sqlite_uri

pytestmark = pytest.mark.integration

HTTP_PORT = 18100
PREFIX = "/rag"
KEY_ENV, KEY = "LLMFLOW_ROUTER_TEST_KEY", "router-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@serve.deployment(ray_actor_options={"num_cpus": 0})
class EchoLLM:
    """The handle API of serve.llm.deployment.LLMDeployment, answering with the prompt it was given."""

    async def generate(self, prompt=None, messages=None, model=None, sampling=None):
        if (sampling or {}).get("temperature", 0) < 0:
            from serve.errors import LLMRequestError
            raise LLMRequestError(400, "temperature must be non-negative")
        text = messages[-1]["content"]
        if (sampling or {}).get("seed") is not None:  # lets a test get two answers to one question
            text += f" (seed {sampling['seed']})"
        return {"text": text, "finish_reason": "stop", "model": "echo", "prompt_tokens": len(text.split()),
                "completion_tokens": len(text.split())}

    async def generate_stream(self, prompt=None, messages=None, model=None, sampling=None):
        for word in messages[-1]["content"].split(" "):
            yield word + " "


def serve_port() -> int:
    from ray.serve.context import _get_global_client

    return _get_global_client().http_config.port


@pytest.fixture(scope="module")
def serve_base(ray_local):
    from ray.serve.context import _get_global_client

    started_here = _get_global_client(raise_if_no_controller_running=False) is None
    serve.start(http_options={"host": "127.0.0.1", "port": HTTP_PORT})
    yield f"http://127.0.0.1:{serve_port()}"
    if started_here:  # leave no Serve behind for modules that start their own on another port
        serve.shutdown()


@pytest.fixture(scope="module")
def online_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("router_online")


def _router_apps(rag_index_dir, online_dir) -> dict:
    """name -> (route prefix, bound app) of the three routers this module talks to."""
    from serve.online_eval.config import OnlineEvalConfig

    os.environ[KEY_ENV] = KEY  # build_router forwards the caller's value to the replicas
    plain = RouterConfig(index_dir=str(rag_index_dir), relevance_threshold=0.35, fallback="refuse",
                         num_replicas=2, num_cpus=0.5)
    # One replica with the online loop: a request's feedback must reach the replica that answered it.
    online = OnlineEvalConfig(tracking_uri=sqlite_uri(online_dir), embed_queries=False,
                              sample_rate=1.0, judge_rate=0.0, feedback_path=str(online_dir / "feedback.jsonl"))
    feedback = RouterConfig(index_dir=str(rag_index_dir), num_cpus=0.5, online_eval=online)
    busy = RouterConfig(index_dir=str(rag_index_dir), fallback="generate", num_cpus=0.5, max_inflight=4)
    return {"rag-router-test": (PREFIX, build_router(plain, EchoLLM.bind(), api_key_env=KEY_ENV)),
            "rag-router-fb": ("/ragfb", build_router(feedback, EchoLLM.bind(), api_key_env=KEY_ENV)),
            "rag-router-busy": ("/ragbusy", build_router(busy, SlowLLM.bind(), api_key_env=KEY_ENV))}


@pytest.fixture(scope="module")
def routers(serve_base, rag_index_dir, online_dir):
    """The three routers, started together (one `serve.run_many`): their replicas' start-up (imports, the
    embedder) overlaps instead of costing ~40 s each in turn."""
    from ray.serve.api import RunTarget

    apps = _router_apps(rag_index_dir, online_dir)
    serve.run_many([RunTarget(target=app, name=name, route_prefix=prefix) for name, (prefix, app) in apps.items()])
    yield {name: f"{serve_base}{prefix}" for name, (prefix, _) in apps.items()}
    for name in apps:
        serve.delete(name)


@pytest.fixture(scope="module")
def router_url(routers):
    return routers["rag-router-test"]


@pytest.fixture(scope="module")
def feedback_router_url(routers):
    return routers["rag-router-fb"]


def chat(url, content, headers=AUTH, **kw):
    return httpx.post(f"{url}/v1/chat/completions", timeout=60, headers=headers,
                      json={"model": "rag", "messages": [{"role": "user", "content": content}], **kw})


def assert_openai_error(r: httpx.Response, status: int, type_: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == status and err["message"]
    assert type_ is None or err["type"] == type_, err
    return err


ROUTES = [("POST", "/v1/chat/completions", {"model": "rag", "messages": [{"role": "user", "content": "hi"}]}),
          ("POST", "/feedback", {"request_id": "x", "thumb": "up"}), ("GET", "/online/metrics", None),
          ("GET", "/v1/models", None), ("GET", "/docs", None), ("GET", "/no-such-route", None)]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}],
                         ids=["no-key", "wrong-key", "no-bearer"])
def test_every_route_but_health_needs_the_key(feedback_router_url, headers):
    router_url = feedback_router_url
    for method, path, body in ROUTES:
        r = httpx.request(method, router_url + path, json=body, headers=headers, timeout=30)
        assert_openai_error(r, 401, "authentication_error")
        assert r.json()["error"]["param"] is None
    r = httpx.get(f"{router_url}/health", headers=headers, timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_right_key_opens_every_route_and_errors_are_openai_shaped(feedback_router_url):
    router_url = feedback_router_url
    assert httpx.get(f"{router_url}/v1/models", headers=AUTH, timeout=30).json()["data"][0]["object"] == "model"
    assert "arms" in httpx.get(f"{router_url}/online/metrics", headers=AUTH, timeout=30).json()
    assert chat(router_url, "What does the assert statement do?").status_code == 200
    assert_openai_error(httpx.get(f"{router_url}/no-such-route", headers=AUTH, timeout=30), 404)
    assert_openai_error(httpx.get(f"{router_url}/v1/chat/completions", headers=AUTH, timeout=30), 405)
    err = assert_openai_error(httpx.post(f"{router_url}/feedback", headers=AUTH, timeout=30,
                                         json={"request_id": "chatcmpl-never-seen", "thumb": "up"}), 404)
    assert "chatcmpl-never-seen" in err["message"] and err["param"] == "request_id"
    assert_openai_error(httpx.post(f"{router_url}/feedback", headers=AUTH, timeout=30,
                                   json={"request_id": "x", "thumb": "sideways"}), 422)


def test_two_votes_on_one_request_make_one_preference_pair(feedback_router_url, online_dir):
    router_url = feedback_router_url
    from components.artifacts import read_preferences
    from components.eval.preferences import FeedbackRecord, export_preferences

    question = "Which exception does a failing assert statement raise?"
    ids = [chat(router_url, question, seed=s).json()["id"] for s in (1, 2)]  # two answers to one question
    votes = [(ids[0], "up"), (ids[1], "down"), (ids[1], "down"), (ids[0], "up"), (ids[0], "up")]
    for rid, thumb in votes:  # every vote is accepted; a repeat replaces the user's earlier one
        r = httpx.post(f"{router_url}/feedback", headers=AUTH, timeout=60, json={"request_id": rid, "thumb": thumb})
        assert r.status_code == 200, r.text
    lines = (online_dir / "feedback.jsonl").read_text().splitlines()
    mine = [FeedbackRecord(**json.loads(x)) for x in lines]
    mine = [r for r in mine if r.prompt == question]
    assert len(mine) == len(votes)
    report = export_preferences(mine, online_dir / "prefs")
    assert report["num_pairs"] == 1
    [row] = read_preferences(online_dir / "prefs")
    assert row.chosen.endswith("(seed 1)") and row.rejected.endswith("(seed 2)")


def test_relevant_question_is_grounded_with_citations(router_url):
    r = chat(router_url, "Which exception does a failing assert statement raise?", max_tokens=16)
    assert r.status_code == 200, r.text
    body = r.json()
    rag = body["rag"]
    assert rag["route"] == "rag" and rag["sources"][0]["doc_id"] == "assert"
    assert {"id", "title", "score", "relevance", "n"} <= set(rag["sources"][0])
    answer = body["choices"][0]["message"]["content"]
    assert "[1] assert" in answer and "AssertionError" in answer  # the cited chunk holds the answer
    top = rag["retrieved"][0]
    assert top["id"] == rag["sources"][0]["id"]
    assert set(rag["timings_ms"]) == {"embed_ms", "search_ms", "generate_ms"}


def test_off_topic_question_gets_i_dont_know(router_url):
    r = chat(router_url, "What is a good recipe for chocolate cake with strawberries?")
    assert r.status_code == 200 and r.json()["rag"]["route"] == "refuse"
    assert "don't know" in r.json()["choices"][0]["message"]["content"]


def test_streaming_through_the_router_with_the_openai_client(router_url):
    from openai import OpenAI

    client = OpenAI(base_url=f"{router_url}/v1", api_key=KEY, max_retries=0, timeout=60)
    chunks = list(client.chat.completions.create(
        model="rag", stream=True, messages=[{"role": "user", "content": "How does the del statement delete names?"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "Question: How does the del statement delete names?" in text
    assert chunks[0].model_extra["rag"]["route"] == "rag"
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("content,status", [("   ", 400), ("x" * 2001, 413)])
def test_empty_or_oversized_query_is_4xx(router_url, content, status):
    r = chat(router_url, content)
    assert r.status_code == status and r.json()["error"]["code"] == status


def test_malformed_json_and_llm_rejections_are_4xx(router_url):
    r = httpx.post(f"{router_url}/v1/chat/completions", content=b"{not json", timeout=30, headers=AUTH)
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    r = chat(router_url, "What does the assert statement do?", temperature=-1)
    assert r.status_code == 400 and "temperature" in r.json()["error"]["message"]


# -- overload: the router's own guard and a full LLM both answer 429 + Retry-After, never 5xx --
@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1, max_queued_requests=1)
class SlowLLM:
    """One request at a time, one queued: more router calls get Serve's BackPressureError."""

    async def generate(self, prompt=None, messages=None, model=None, sampling=None):
        await asyncio.sleep(1.5)
        return {"text": "slow answer", "finish_reason": "stop", "model": "slow", "prompt_tokens": 1,
                "completion_tokens": 2}

    async def generate_stream(self, prompt=None, messages=None, model=None, sampling=None):
        await asyncio.sleep(1.5)
        for word in ("slow", " answer"):
            yield word


@pytest.fixture(scope="module")
def busy_router_url(routers):
    return routers["rag-router-busy"]


def test_overload_is_429_with_retry_after_streaming_or_not_and_recovers(busy_router_url):
    def one(i: int) -> tuple[int, str, str | None, str]:
        r = chat(busy_router_url, f"What does the assert statement do? ({i})", stream=bool(i % 2))
        return r.status_code, r.headers.get("content-type", ""), r.headers.get("retry-after"), r.text

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(one, range(12)))
    codes = [c for c, *_ in results]
    assert set(codes) <= {200, 429}, results
    assert 1 <= codes.count(200) <= 3, codes  # the LLM takes one, queues one (a late arrival may get a third)
    busy = [r for r in results if r[0] == 429]
    for _, ctype, retry, text in busy:
        assert ctype.startswith("application/json") and retry == "1"
        assert json.loads(text)["error"]["type"] == "rate_limit_exceeded"
    messages = " ".join(json.loads(t)["error"]["message"] for *_, t in busy)
    assert "Server busy" in messages  # the router's own guard (4 in flight)
    assert "at capacity" in messages  # Serve rejected the router's handle call (BackPressureError)
    assert any(r[0] == 429 and r[1].startswith("application/json") for r in results[1::2])  # streams too
    r = chat(busy_router_url, "What does the assert statement do?")
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "slow answer"
