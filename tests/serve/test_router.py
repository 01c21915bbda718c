"""The RAG router live on Ray Serve over HTTP, in front of an echoing fake LLM deployment.

The fake echoes the last message it receives, so the tests see exactly which prompt the
router built. Two router replicas serve one local-mode index (the lock is designed around:
each replica reads a private snapshot). Serve HTTP on 18100 unless Serve already runs
(another test module started it), in which case the router joins it under /rag.
"""
from __future__ import annotations

import httpx
import pytest
from ray import serve

from serve.router import build_router
from serve.router_config import RouterConfig
from tests.rag.fixtures import rag_docs, rag_docs_dir, rag_index_dir  # noqa: F401

pytestmark = pytest.mark.integration

HTTP_PORT = 18100
PREFIX = "/rag"


@serve.deployment(ray_actor_options={"num_cpus": 0})
class EchoLLM:
    """The handle API of serve.llm.LLMDeployment, answering with the prompt it was given."""

    async def generate(self, prompt=None, messages=None, model=None, sampling=None):
        if (sampling or {}).get("temperature", 0) < 0:
            from serve.errors import LLMRequestError
            raise LLMRequestError(400, "temperature must be non-negative")
        text = messages[-1]["content"]
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
def router_url(serve_base, rag_index_dir):
    config = RouterConfig(index_dir=str(rag_index_dir), relevance_threshold=0.35, fallback="refuse",
                          num_replicas=2, num_cpus=0.5)
    serve.run(build_router(config, EchoLLM.bind()), name="rag-router-test", route_prefix=PREFIX)
    yield f"{serve_base}{PREFIX}"
    serve.delete("rag-router-test")


def chat(url, content, **kw):
    return httpx.post(f"{url}/v1/chat/completions", timeout=60,
                      json={"model": "rag", "messages": [{"role": "user", "content": content}], **kw})


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

    client = OpenAI(base_url=f"{router_url}/v1", api_key="none", max_retries=0, timeout=60)
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
    r = httpx.post(f"{router_url}/v1/chat/completions", content=b"{not json", timeout=30)
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    r = chat(router_url, "What does the assert statement do?", temperature=-1)
    assert r.status_code == 400 and "temperature" in r.json()["error"]["message"]
