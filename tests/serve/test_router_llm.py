"""The RAG router in front of the real LLM deployment (serve.llm.deployment.LLMDeployment on vLLM CPU).

Reuses the session's live LLM app (tests/serve/conftest.py, tiny random-init model) through
a DeploymentHandle, so it costs no second engine start when the serving tests ran first.
The model is random-init: the test checks plumbing (routes, citations, usage, streaming),
not answer quality.
"""
from __future__ import annotations

import httpx
import pytest
from ray import serve

from serve.router.app import build_router
from serve.router.config import RouterConfig
from tests.serve.llm_app_settings import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def router_url(llm_app, rag_index_dir):
    from ray.serve.context import _get_global_client

    handle = serve.get_deployment_handle(llm_app["deployment"], app_name=llm_app["app_name"])
    # The tiny model reads 512 tokens: keep the grounded prompt short.
    config = RouterConfig(index_dir=str(rag_index_dir), fallback="generate", max_source_chars=300,
                          default_max_tokens=8, num_cpus=0.5,
                          retrieval={"top_k": 2, "prefetch_k": 10})
    # the stack's one key: the router takes the LLM app's
    serve.run(build_router(config, handle, api_key_env=llm_app["api_key_env"]), name="rag-router-llm",
              route_prefix="/ragllm")
    yield f"http://127.0.0.1:{_get_global_client().http_config.port}/ragllm"
    serve.delete("rag-router-llm")


def chat(url, content, **kw):
    return httpx.post(f"{url}/v1/chat/completions", timeout=120, headers=AUTH,
                      json={"model": "tiny", "messages": [{"role": "user", "content": content}], **kw})


def test_grounded_and_plain_routes_reach_the_llm(router_url, llm_app):
    r = chat(router_url, "Which exception does a failing assert statement raise?", temperature=0)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rag"]["route"] == "rag" and body["rag"]["sources"][0]["doc_id"] == "assert"
    assert body["model"] == llm_app["model"] and 0 < body["usage"]["completion_tokens"] <= 8
    assert body["usage"]["prompt_tokens"] > 100  # the sources went into the prompt
    r = chat(router_url, "What is a good recipe for chocolate cake with strawberries?", temperature=0)
    assert r.status_code == 200 and r.json()["rag"]["route"] == "generate"
    assert r.json()["usage"]["prompt_tokens"] < 60  # the plain question only


def test_streaming_from_the_llm_through_the_router(router_url):
    with httpx.stream("POST", f"{router_url}/v1/chat/completions", timeout=120, headers=AUTH, json={
            "model": "tiny", "stream": True, "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": "How does the del statement delete names?"}]}) as r:
        assert r.status_code == 200
        events = [line.removeprefix("data: ") for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    import json
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["rag"]["route"] == "rag"
    assert sum(1 for c in chunks if c["choices"][0]["delta"].get("content")) >= 2  # token deltas streamed


def test_llm_validation_errors_pass_through(router_url):
    r = chat(router_url, "What does the assert statement do?", temperature=-1)
    assert r.status_code == 400 and r.json()["error"]["code"] == 400


def test_quote_mode_answers_with_one_sentence_of_a_source_from_vllm(llm_app):
    """Quote mode through the real LLM deployment: vLLM's choice grammar keeps even a random-init
    model's answer to exactly one "[n] sentence" of the sources it was shown."""
    import asyncio

    from components.rag.retriever import Source
    from serve.router.core import HandleLLM, RouterCore

    text = ("The assert statement is a convenient way to insert debugging assertions into a program. "
            "The simple form raises AssertionError when its expression is false.")

    class Retriever:
        def timed_search(self, query):
            return [Source(id="p1", doc_id="assert", title="assert", source="pydoc", text=text, chunk_index=0,
                           score=0.5, relevance=0.9)], {"embed_ms": 0.0, "search_ms": 0.0}

    handle = serve.get_deployment_handle(llm_app["deployment"], app_name=llm_app["app_name"])
    core = RouterCore(RouterConfig(index_dir="unused", answer_mode="quote", max_source_chars=300), Retriever(),
                      HandleLLM(handle))
    choices = ["[1] The assert statement is a convenient way to insert debugging assertions into a program.",
               "[1] The simple form raises AssertionError when its expression is false."]
    for seed in (0, 1):
        out = asyncio.run(core.complete({"model": "tiny", "max_tokens": 128, "temperature": 1.0, "seed": seed,
                                         "messages": [{"role": "user", "content": "What does assert do?"}]}))
        assert out["rag"]["answer_mode"] == "quote"
        assert out["choices"][0]["message"]["content"] in choices, out["choices"][0]["message"]
