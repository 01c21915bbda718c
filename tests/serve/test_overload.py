"""Integration: bounded concurrency serves everyone; overload sheds with an OpenAI-shaped 429 +
Retry-After (never Serve's plain-text 503, never 5xx), streaming or not, and recovers."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.serve.llm_app_settings import API_KEY

pytestmark = pytest.mark.integration


def test_parallel_clients_within_limits_all_succeed(llm_app):
    from openai import OpenAI

    # 4 clients = max_num_seqs: all decode at once, with headroom below the admission limit
    # (max_num_seqs + max_engine_waiting = 8) for requests of earlier tests still draining.
    def client_session(i: int) -> list[int]:
        c = OpenAI(base_url=llm_app["url"], api_key=API_KEY, max_retries=0, timeout=120)
        out = []
        for j in range(3):
            r = c.completions.with_raw_response.create(model="tiny", prompt=f"Client {i} asks {j}", max_tokens=16)
            out.append(r.http_response.status_code)
            assert r.parse().usage.completion_tokens == 16
        return out

    with ThreadPoolExecutor(4) as pool:
        codes = [c for cs in pool.map(client_session, range(4)) for c in cs]
    assert codes == [200] * 12


def burst(url: str, n: int, stream_every: int = 0) -> list[httpx.Response]:
    def one(i: int) -> httpx.Response:
        body = {"model": "tiny", "prompt": f"Overload {i}", "max_tokens": 48, "temperature": 0,
                "stream": bool(stream_every and i % stream_every == 0)}
        with httpx.Client(timeout=180) as c:
            r = c.post(f"{url}/completions", headers={"Authorization": f"Bearer {API_KEY}"}, json=body)
            r.read()
            return r

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def assert_shed_like_openai(r: httpx.Response) -> None:
    assert r.status_code == 429, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json") and r.headers["retry-after"] == "1"
    err = r.json()["error"]
    assert err["type"] == "rate_limit_exceeded" and err["code"] == 429 and "retry" in err["message"]


def test_overload_sheds_with_openai_429_and_recovers(llm_app, client):
    responses = burst(llm_app["url"], 32, stream_every=3)  # 4x the admission limit, a third streaming
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 429}, codes          # never Serve's plain-text 503, never 5xx
    assert codes.count(200) >= 8, codes             # admitted work completes
    assert codes.count(429) > 0, codes              # the rest is shed, not queued without bound
    for r in responses:
        if r.status_code == 429:
            assert_shed_like_openai(r)
    assert any(r.status_code == 429 for r in responses[::3]), codes  # streaming requests are shed the same way
    streamed = [r for r in responses[::3] if r.status_code == 200]
    assert all(json.loads(r.text.split("data: ")[1])["choices"] for r in streamed)
    assert client.completions.create(model="tiny", prompt="still alive?", max_tokens=4).usage.completion_tokens == 4


def test_handle_calls_count_against_the_same_limit(llm_app):
    """The router's path: handle calls past the admission limit raise a 429 LLMRequestError."""
    from ray import serve

    from serve.errors import LLMRequestError

    handle = serve.get_deployment_handle(llm_app["deployment"], app_name=llm_app["app_name"])
    calls = [handle.generate.remote(prompt=f"Handle {i}", sampling={"max_tokens": 48}) for i in range(24)]
    outcomes = []
    for c in calls:
        try:
            outcomes.append(c.result(timeout_s=180)["completion_tokens"])
        except LLMRequestError as e:
            assert (e.status_code, e.type) == (429, "rate_limit_exceeded")
            outcomes.append(429)
    assert outcomes.count(429) > 0 and outcomes.count(48) >= 8, outcomes
    assert handle.generate.remote(prompt="after", sampling={"max_tokens": 2}).result(timeout_s=120)["completion_tokens"] == 2
