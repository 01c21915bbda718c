"""Integration: overload of the stack `llmflow run e2e` leaves running, with its default limits.

A burst far beyond the admission limit (max_num_seqs + max_engine_waiting per LLM replica; the
router's limit follows it), first straight to the LLM app, then through the RAG router, a third
of it streaming: every answer is 200 or an OpenAI-shaped 429 with Retry-After, never Serve's
plain-text 503 or any 5xx, each app completes the work it admitted, and both apps answer
normally right after.

The two bursts are sent one after the other: the router forwards to the same LLM app, so in a
single mixed burst the direct requests can fill the LLM's slots before the router's requests
(which embed and retrieve first) reach it, and every router request is then shed by the LLM
behind it. That is correct shedding, but it leaves nothing to show that the router's admitted
work completes.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NUM_PER_APP = 96  # 3x the default admission limit (16 decoding + 16 waiting) on each app


def _request(stack: dict, i: int, to_rag: bool, start: threading.Barrier | None = None
             ) -> tuple[str, bool, httpx.Response]:
    stream = i % 3 == 0
    headers = {"Authorization": f"Bearer {stack['api_key']}"}
    if to_rag:
        url = f"{stack['rag_url']}/chat/completions"
        body = {"model": "llmflow-rag", "max_tokens": 48, "stream": stream,
                "messages": [{"role": "user", "content": f"What does the assert statement do? ({i})"}]}
    else:
        # Long answers (EOS ignored): the tiny model finishes 48 tokens faster than 96 threads
        # connect on 2 loaded cores, so short requests never pile up past the admission limit.
        url = f"{stack['llm_url']}/completions"
        body = {"model": "llmflow", "prompt": f"The for statement {i}", "max_tokens": 256, "ignore_eos": True,
                "stream": stream}
    with httpx.Client(timeout=300) as client:
        if start is not None:
            start.wait()  # every thread holds an open client, then all send at once
        r = client.post(url, json=body, headers=headers)
        r.read()
    return ("rag" if to_rag else "llm"), stream, r


def test_burst_beyond_the_limit_gets_openai_429_then_service_recovers(e2e_stack):
    results = []
    for to_rag in (False, True):
        start = threading.Barrier(NUM_PER_APP)
        with ThreadPoolExecutor(NUM_PER_APP) as pool:
            results += pool.map(lambda i: _request(e2e_stack, i, to_rag, start), range(NUM_PER_APP))
    codes = {app: [r.status_code for a, _, r in results if a == app] for app in ("llm", "rag")}
    for app, cs in codes.items():
        assert set(cs) <= {200, 429}, (app, sorted(set(cs)), [r.text[:200] for a, _, r in results
                                                             if a == app and r.status_code not in (200, 429)][:3])
        assert cs.count(429) > 0, (app, cs)  # shed, not queued without bound
        assert cs.count(200) > 0, (app, cs)  # admitted work completes
    for app, stream, r in results:
        if r.status_code == 429:
            assert r.headers["content-type"].startswith("application/json"), (app, stream, r.text[:200])
            assert int(r.headers["retry-after"]) >= 1
            err = r.json()["error"]
            assert err["type"] == "rate_limit_exceeded" and err["code"] == 429 and err["message"]
    assert any(stream and r.status_code == 429 for _, stream, r in results)  # streams are shed as a status too

    # right after the burst, both apps answer normally
    app, _, r = _request(e2e_stack, 2, to_rag=False)
    assert app == "llm" and r.status_code == 200 and r.json()["usage"]["completion_tokens"] > 0
    app, _, r = _request(e2e_stack, 1, to_rag=True)
    assert app == "rag" and r.status_code == 200 and r.json()["rag"]["sources"]
