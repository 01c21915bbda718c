"""The budgeting router in front of the real vLLM engine (tiny model, 512-token context).

Sources are sent whole (max_source_chars 1500, top 5) so most questions' relevant sources overflow
the context uncut: each must still come back 200 with cited sources, and the prompt the router
counted must be exactly the prompt vLLM counted (``usage.prompt_tokens``).
"""
from __future__ import annotations

import httpx
import pytest
from ray import serve

from serve.router.app import build_router
from serve.router.config import RouterConfig

pytestmark = pytest.mark.integration

QUESTIONS = ["What is a generator?", "How do I define a class?", "What is a lambda?",
             "How does exception handling work?", "What are decorators?", "What does the assert statement do?",
             "How do I write a while loop?", "What does the global statement do?"]


@pytest.fixture(scope="module")
def budget_router_url(llm_app, rag_index_dir, tiny_model_dir):
    from ray.serve.context import _get_global_client

    handle = serve.get_deployment_handle(llm_app["deployment"], app_name=llm_app["app_name"])
    config = RouterConfig(index_dir=str(rag_index_dir), fallback="generate", max_source_chars=1500,
                          tokenizer=str(tiny_model_dir), max_model_len=512, num_cpus=0.5, max_query_chars=20_000,
                          retrieval={"top_k": 5, "prefetch_k": 20})
    serve.run(build_router(config, handle), name="rag-router-budget", route_prefix="/ragbudget")
    yield f"http://127.0.0.1:{_get_global_client().http_config.port}/ragbudget"
    serve.delete("rag-router-budget")


def chat(url, content, **kw):
    return httpx.post(f"{url}/v1/chat/completions", timeout=120,
                      json={"model": "tiny", "messages": [{"role": "user", "content": content}], **kw})


@pytest.mark.parametrize("max_tokens", [None, 8, 300])
def test_overflowing_sources_are_cut_and_counted_exactly_as_vllm(budget_router_url, max_tokens):
    # All questions at 8 new tokens; the longer budgets (the random model writes all 128 / 300 tokens,
    # ~5 s an answer on 2 cores) on half of them.
    questions = QUESTIONS if max_tokens == 8 else QUESTIONS[::2]
    cut = 0
    for question in questions:
        r = chat(budget_router_url, question, temperature=0, **({} if max_tokens is None else {"max_tokens": max_tokens}))
        assert r.status_code == 200, (question, r.text)
        body = r.json()
        rag, budget = body["rag"], body["rag"]["budget"]
        assert rag["route"] == "rag" and rag["sources"], (question, rag["route"])
        assert body["usage"]["prompt_tokens"] == budget["prompt_tokens"], (question, body["usage"], budget)
        assert budget["prompt_tokens"] + budget["max_tokens"] <= 512
        assert budget["max_tokens"] == (128 if max_tokens is None else max_tokens)
        cut += bool(budget["dropped"] or budget["trimmed"])
    # most have several relevant ~600-char chunks: together well over 512 tokens
    assert cut >= len(questions) // 2, f"only {cut} questions needed sources cut; they no longer test the budget"


def test_question_alone_over_the_context_is_400_and_says_so(budget_router_url):
    r = chat(budget_router_url, "Explain exceptions, tracebacks and handlers in detail. " * 60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    assert "context holds 512 tokens" in r.json()["error"]["message"]
    r = chat(budget_router_url, "What is a lambda?", max_tokens=500)
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
