"""Routing logic of the RAG router with a fake retriever and a fake LLM (no Ray, no Qdrant)."""
import asyncio
import json
import time

import pytest

from components.rag.qdrant_store import StoreUnavailableError
from components.rag.retriever import Source
from serve.errors import LLMRequestError
from serve.router.config import RouterConfig
from serve.router.core import RouterCore


class FakeRetriever:
    def __init__(self, relevance=0.8, error=None, delay_s=0.0):
        self.relevance, self.error, self.delay_s = relevance, error, delay_s

    def timed_search(self, query):
        time.sleep(self.delay_s)
        if self.error:
            raise self.error
        return [Source(id="p1", doc_id="assert", title="assert", source="pydoc", text="assert raises AssertionError",
                       chunk_index=0, score=0.5, relevance=self.relevance),
                Source(id="p2", doc_id="del", title="del", source="pydoc", text="del removes names",
                       chunk_index=0, score=0.4, relevance=self.relevance - 0.5)], {"embed_ms": 1.0, "search_ms": 2.0}


class FakeLLM:
    """Echoes the prompt it got, so tests see what the router sent."""

    def __init__(self, error=None):
        self.calls, self.error = [], error

    async def generate(self, *, messages, model, sampling):
        self.calls.append((messages, sampling))
        if self.error:
            raise self.error
        text = messages[-1]["content"]
        return {"text": text, "finish_reason": "stop", "model": "fake", "prompt_tokens": 3, "completion_tokens": 2}

    async def generate_stream(self, *, messages, model, sampling):
        self.calls.append((messages, sampling))
        for word in messages[-1]["content"].split(" ")[:5]:
            yield word + " "


class LLMRejection(Exception):
    def __init__(self):
        super().__init__("bad temperature")
        self.status_code, self.message, self.type = 400, "temperature must be >= 0", "invalid_request_error"


def core(fallback="refuse", retriever=None, llm=None, **kw):
    cfg = RouterConfig(index_dir="unused", relevance_threshold=0.5, fallback=fallback, search_timeout_s=0.5, **kw)
    return RouterCore(cfg, retriever or FakeRetriever(), llm or FakeLLM())


def ask(q, **kw):
    return {"model": "x", "messages": [{"role": "user", "content": q}], **kw}


def run(coro):
    return asyncio.run(coro)


def test_relevant_query_gets_grounded_prompt_and_citations():
    llm = FakeLLM()
    out = run(core(llm=llm).complete(ask("what does assert do?", temperature=0)))
    prompt = llm.calls[0][0][-1]["content"]
    assert out["rag"]["route"] == "rag" and "[1] assert" in prompt and "Question: what does assert do?" in prompt
    assert [s["id"] for s in out["rag"]["sources"]] == ["p1"]  # p2 is below the threshold: not cited
    assert out["rag"]["sources"][0]["n"] == 1 and out["rag"]["sources"][0]["title"] == "assert"
    assert llm.calls[0][1] == {"temperature": 0, "max_tokens": 128}
    assert set(out["rag"]["timings_ms"]) == {"embed_ms", "search_ms", "generate_ms"}
    assert out["object"] == "chat.completion" and out["choices"][0]["message"]["content"] == prompt


def test_quote_mode_constrains_the_answer_to_sentences_of_the_sources():
    long = Source(id="p1", doc_id="assert", title="assert", source="pydoc", chunk_index=0, score=0.5, relevance=0.8,
                  text="Assert statements are a convenient way to insert debugging assertions. Short. "
                       "The simple form raises AssertionError when the expression is false.")

    class OneSource(FakeRetriever):
        def timed_search(self, query):
            return [long], {"embed_ms": 1.0, "search_ms": 2.0}

    llm = FakeLLM()
    out = asyncio.run(core(retriever=OneSource(), llm=llm, answer_mode="quote").complete(ask("what does assert do?")))
    sampling = llm.calls[0][1]
    assert sampling["structured_outputs"] == {"choice": [
        "[1] Assert statements are a convenient way to insert debugging assertions.",
        "[1] The simple form raises AssertionError when the expression is false."]}
    assert out["rag"]["answer_mode"] == "quote"
    # Default mode, and a source with no sentence to quote: free generation, said in the response.
    llm = FakeLLM()
    out = asyncio.run(core(llm=llm).complete(ask("what does assert do?")))
    assert "structured_outputs" not in llm.calls[0][1] and out["rag"]["answer_mode"] == "generate"
    llm = FakeLLM()
    out = asyncio.run(core(llm=llm, answer_mode="quote").complete(ask("what does assert do?")))
    assert "structured_outputs" not in llm.calls[0][1]
    assert out["rag"]["answer_mode"].startswith("generate (no sentence")


def test_irrelevant_query_refuses_without_calling_the_llm():
    llm = FakeLLM()
    out = run(core(retriever=FakeRetriever(relevance=0.2), llm=llm).complete(ask("weather in Paris?")))
    assert out["rag"]["route"] == "refuse" and "don't know" in out["choices"][0]["message"]["content"]
    assert out["rag"]["sources"] == [] and llm.calls == []


def test_irrelevant_query_with_generate_policy_sends_the_plain_conversation():
    llm = FakeLLM()
    out = run(core("generate", retriever=FakeRetriever(relevance=0.2), llm=llm).complete(ask("weather in Paris?")))
    assert out["rag"]["route"] == "generate" and llm.calls[0][0] == [{"role": "user", "content": "weather in Paris?"}]


@pytest.mark.parametrize("body,status", [
    (ask("   "), 400), (ask("x" * 2001), 413), ({"messages": []}, 400), ([1, 2], 400),
    ({"messages": [{"role": "system", "content": "hi"}]}, 400)])
def test_bad_requests_are_4xx(body, status):
    with pytest.raises(LLMRequestError) as e:
        run(core().complete(body))
    assert e.value.status_code == status and e.value.to_body()["error"]["code"] == status


def test_index_down_or_slow_is_503_within_the_bound():
    with pytest.raises(LLMRequestError) as e:
        run(core(retriever=FakeRetriever(error=StoreUnavailableError("refused"))).complete(ask("q")))
    assert e.value.status_code == 503 and "unavailable" in e.value.message

    async def timed():  # timed inside the loop: asyncio.run itself waits for the stuck thread on exit
        t0 = time.monotonic()
        try:
            await core(retriever=FakeRetriever(delay_s=1.5)).complete(ask("q"))
        except LLMRequestError as err:
            return err, time.monotonic() - t0

    err, elapsed_s = run(timed())
    assert err.status_code == 503 and elapsed_s < 1.2


def test_llm_rejection_keeps_its_status():
    with pytest.raises(LLMRequestError) as e:
        run(core(llm=FakeLLM(error=LLMRejection())).complete(ask("assert?")))
    assert e.value.status_code == 400 and "temperature" in e.value.message


def test_stream_carries_rag_first_and_last_then_done():
    c = core()

    async def collect():
        plan = await c.plan(ask("what does assert do?", stream=True))
        return [line async for line in c.stream(plan)]

    lines = run(collect())
    assert lines[-1] == "data: [DONE]\n\n"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert chunks[0]["rag"]["route"] == "rag" and chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and "generate_ms" in chunks[-1]["rag"]["timings_ms"]
    text = "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks)
    assert text.startswith("Answer the question")


@pytest.mark.integration
def test_real_store_on_a_dead_server_gives_503_within_the_bound(tmp_path, monkeypatch):
    """The real chain: index.json (server backend) → open_index → qdrant-client on a dead port → 503."""
    import socket

    from components.rag.retriever import Retriever, open_index

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    (tmp_path / "index.json").write_text(json.dumps({"backend": "server", "location": "http://qdrant:6333",
                                                     "collection": "llmflow_docs"}))
    monkeypatch.setenv("QDRANT_URL", f"http://127.0.0.1:{dead}")
    cfg = RouterConfig(index_dir=str(tmp_path), search_timeout_s=2.0)

    class OneHotEmbedder:
        def embed(self, texts):
            import numpy as np
            return np.eye(1, 384, dtype=np.float32).repeat(len(texts), axis=0)

    store = open_index(tmp_path, timeout_s=cfg.search_timeout_s)
    router = RouterCore(cfg, Retriever(store, OneHotEmbedder(), cfg.retrieval), FakeLLM())

    async def timed():
        t0 = time.monotonic()
        try:
            await router.complete(ask("what does assert do?"))
        except LLMRequestError as err:
            return err, time.monotonic() - t0

    err, elapsed_s = run(timed())
    assert err.status_code == 503 and "unavailable" in err.message and elapsed_s < 3


# -- prompt budget (real tokenizer of the tiny served model, 512-token context) ------------------

class DocsRetriever:
    """Five relevant, ranked sources of real docs: together far over the 512-token context."""

    def __init__(self, texts, relevance=0.8):
        self.calls, self.sources = 0, [
            Source(id=f"s{i}", doc_id=f"d{i}", title=f"doc {i}", source="pydoc", text=t[:1200], chunk_index=0,
                   score=1 - i / 10, relevance=relevance) for i, t in enumerate(texts)]

    def timed_search(self, query):
        self.calls += 1
        return self.sources, {"embed_ms": 1.0, "search_ms": 2.0}


@pytest.fixture(scope="module")
def budget_parts(tiny_model_dir, stdlib_texts):
    from components.rag.budget import load_chat_token_counter

    texts = [t for t in stdlib_texts if len(t) > 1500][:5]
    return str(tiny_model_dir), load_chat_token_counter(str(tiny_model_dir)), texts


def budget_core(parts, fallback="refuse", relevance=0.8, **kw):
    model_dir, _, texts = parts
    retriever, llm = DocsRetriever(texts, relevance), FakeLLM()
    return core(fallback, retriever=retriever, llm=llm, tokenizer=model_dir, max_model_len=512, **kw), retriever, llm


@pytest.mark.parametrize("question", ["What is a generator?", "How do I define a class?", "What is a lambda?",
                                      "How does exception handling work?", "What are decorators?"])
def test_overflowing_sources_are_cut_to_fit_and_reported(budget_parts, question):
    c, _, llm = budget_core(budget_parts, max_source_chars=1500)
    count = budget_parts[1]
    out = run(c.complete(ask(question)))
    sent, sampling = llm.calls[0]
    budget = out["rag"]["budget"]
    assert out["rag"]["route"] == "rag" and out["rag"]["sources"], "a grounded answer with cited sources"
    assert sampling["max_tokens"] == 128 and budget["max_tokens"] == 128 and budget["max_model_len"] == 512
    assert budget["prompt_tokens"] == count(sent) <= 512 - 128
    assert budget["dropped"] or budget["trimmed"], "five 1200-char sources overflow 512 tokens"
    # the cited sources are the best-ranked ones, numbered as in the prompt; a trimmed one is the last
    kept = [s["id"] for s in out["rag"]["sources"]]
    assert all(t["id"] == kept[-1] and t["chars_sent"] < t["chars"] for t in budget["trimmed"])
    assert kept == [f"s{i}" for i in range(len(kept))] and f"[{len(kept)}] doc {len(kept) - 1}" in sent[-1]["content"]
    assert [d["id"] for d in budget["dropped"]] == [f"s{i}" for i in range(len(kept), 5)]


def test_question_that_alone_overflows_is_400_before_any_search(budget_parts):
    c, retriever, llm = budget_core(budget_parts, max_query_chars=100_000)
    with pytest.raises(LLMRequestError) as e:
        run(c.complete(ask("Tell me everything about exceptions and tracebacks. " * 120)))
    assert e.value.status_code == 400 and e.value.param == "messages"
    assert "context holds 512 tokens" in e.value.message and "shorten the question" in e.value.message
    assert retriever.calls == 0 and llm.calls == []


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_that_leaves_no_room_for_the_question_is_400(budget_parts, field):
    c, _, llm = budget_core(budget_parts)
    with pytest.raises(LLMRequestError) as e:
        run(c.complete(ask("What is a lambda?", **{field: 510})))
    assert e.value.status_code == 400 and e.value.param == field and "ask for at most" in e.value.message
    assert e.value.to_body()["error"]["param"] == field and llm.calls == []
    with pytest.raises(LLMRequestError) as e:
        run(c.complete(ask("What is a lambda?", max_tokens="many")))
    assert e.value.status_code == 400 and "positive integer" in e.value.message


def test_plain_route_is_budgeted_too(budget_parts):
    c, _, llm = budget_core(budget_parts, fallback="generate", relevance=0.1, max_query_chars=100_000)
    long_q = "Describe the weather in Paris in spring and autumn. " * 12
    count = budget_parts[1]
    out = run(c.complete(ask(long_q)))
    assert out["rag"]["route"] == "generate" and llm.calls[0][0] == ask(long_q)["messages"]
    assert out["rag"]["budget"]["prompt_tokens"] == count(ask(long_q)["messages"])
    with pytest.raises(LLMRequestError) as e:
        run(c.complete(ask(long_q * 5)))
    assert e.value.status_code == 400 and e.value.param == "messages"


def test_long_question_without_max_tokens_gets_the_room_that_is_left(budget_parts):
    """No room for a source beside the question: the fallback policy answers, max_tokens shrinks to fit."""
    count = budget_parts[1]
    question = "How do generators and iterators work together in loops? " * 30
    c, _, llm = budget_core(budget_parts, fallback="generate", max_query_chars=100_000)
    out = run(c.complete(ask(question)))
    room = 512 - count(ask(question)["messages"])
    assert 0 < room < 128 and llm.calls[0][1]["max_tokens"] == room
    assert out["rag"]["route"] == "generate" and out["rag"]["sources"] == [] and "note" in out["rag"]["budget"]
    c, _, llm = budget_core(budget_parts, fallback="refuse", max_query_chars=100_000)
    out = run(c.complete(ask(question)))
    assert out["rag"]["route"] == "refuse" and llm.calls == []
    assert "no room for sources" in out["choices"][0]["message"]["content"]


def test_router_config_needs_tokenizer_and_context_together():
    with pytest.raises(ValueError, match="set both, or neither"):
        RouterConfig(index_dir="x", tokenizer="/models/m")
    assert RouterConfig(index_dir="x").tokenizer is None  # budgeting off is an explicit default
