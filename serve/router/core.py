"""The RAG router's request handling, independent of Ray Serve (so unit tests need no cluster).

``RouterCore`` validates an OpenAI chat request, retrieves sources (bounded in time), routes
(grounded / plain / refuse, ``components.rag.routing``), fits the prompt into the served model's
context when it knows the tokenizer (``components.rag.budget``: lowest-ranked sources dropped or
trimmed, reported in ``rag.budget``; a question too long by itself is a 400) and calls the LLM
through a tiny protocol — the handle API of ``serve.llm.deployment.LLMDeployment``::

    await llm.generate(messages=..., model=..., sampling=...) -> {"text", "finish_reason", "model",
                                                                 "prompt_tokens", "completion_tokens"}
    async for delta in llm.generate_stream(messages=..., model=..., sampling=...): ...

``HandleLLM`` adapts a Serve ``DeploymentHandle`` to it; tests pass a fake.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

from components.rag.budget import (
    ContextOverflowError,
    fit_sources,
    load_chat_token_counter,
    request_max_tokens,
)
from components.grounded import quote_choices
from components.rag.routing import (
    choose_route,
    cited_sources,
    grounded_messages,
    query_of,
)
from serve.errors import LLMRequestError
from serve.router.config import RouterConfig

# OpenAI request fields passed on to the LLM unchanged (the LLM validates their ranges).
SAMPLING_FIELDS = ("max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "seed", "stop",
                   "presence_penalty", "frequency_penalty", "repetition_penalty", "min_tokens")
ROUTER_MODEL = "rag-router"
SNIPPET_CHARS = 240  # per cited source in `rag.sources[].snippet`
log = logging.getLogger("ray.serve")


def snippet(text: str, max_chars: int = SNIPPET_CHARS) -> str:
    """The start of a cited source, cut at a word boundary: what a reader sees beside the answer."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    return text[:max_chars].rsplit(" ", 1)[0] + " …"


class LLMClient(Protocol):
    async def generate(self, *, messages: list[dict], model: str | None, sampling: dict) -> dict[str, Any]: ...

    def generate_stream(self, *, messages: list[dict], model: str | None, sampling: dict) -> AsyncIterator[str]: ...


class HandleLLM:
    """``LLMClient`` over a Serve DeploymentHandle to ``LLMDeployment`` (or anything with its methods)."""

    def __init__(self, handle):
        self.handle = handle

    async def generate(self, **kwargs) -> dict[str, Any]:
        return await self.handle.generate.remote(**kwargs)

    async def generate_stream(self, **kwargs) -> AsyncIterator[str]:
        async for delta in self.handle.options(stream=True).generate_stream.remote(**kwargs):
            yield delta


def llm_error(e: BaseException) -> LLMRequestError | None:
    """An LLM rejection (an ``LLMRequestError``, possibly wrapped by Ray) to pass on with its status."""
    for err in (e, getattr(e, "cause", None)):
        status = getattr(err, "status_code", None)
        if isinstance(status, int) and 400 <= status < 600:
            return LLMRequestError(status, getattr(err, "message", str(err)), getattr(err, "type", "llm_error"))
    return None


class RouterCore:
    def __init__(self, config: RouterConfig, retriever, llm: LLMClient):
        self.config, self.retriever, self.llm = config, retriever, llm
        # Loaded once per replica; every request's prompt is counted with it (~0.2 ms per count).
        self.count_tokens = load_chat_token_counter(config.tokenizer) if config.tokenizer else None
        if self.count_tokens is None:
            log.warning("router.tokenizer is not set: prompts are not budgeted, so questions whose sources "
                        "overflow the model's context get the LLM's 400")

    # -- steps ---------------------------------------------------------------------
    def parse(self, body: Any) -> tuple[list[dict], str, dict, bool]:
        """messages, query, sampling, stream — or a 4xx LLMRequestError."""
        if not isinstance(body, dict):
            raise LLMRequestError(400, "request body must be a JSON object")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise LLMRequestError(400, "`messages` must be a non-empty list of {role, content} objects",
                                  param="messages")
        if not any(m.get("role") == "user" for m in messages):
            raise LLMRequestError(400, "`messages` needs at least one message with role 'user'", param="messages")
        query = query_of(messages).strip()
        if not query:
            raise LLMRequestError(400, "the last user message is empty: send a question", param="messages")
        if len(query) > self.config.max_query_chars:
            raise LLMRequestError(413, f"the query has {len(query)} characters; at most {self.config.max_query_chars} "
                                   "are accepted — shorten it", param="messages")
        sampling = {k: body[k] for k in SAMPLING_FIELDS if k in body}
        if "max_tokens" not in sampling and "max_completion_tokens" not in sampling:
            sampling["max_tokens"] = self.config.default_max_tokens
        return messages, query, sampling, bool(body.get("stream", False))

    async def retrieve(self, query: str):
        from components.rag.qdrant_store import StoreUnavailableError

        try:
            return await asyncio.wait_for(asyncio.to_thread(self.retriever.timed_search, query),
                                          timeout=self.config.search_timeout_s)
        except TimeoutError:
            raise LLMRequestError(503, f"retrieval did not finish within {self.config.search_timeout_s} s "
                                   "(Qdrant slow or unreachable); retry later", "service_unavailable") from None
        except StoreUnavailableError as e:
            raise LLMRequestError(503, f"the document index is unavailable: {e}", "service_unavailable") from None

    def limit_tokens(self, body: dict, messages: list[dict], sampling: dict) -> tuple[int, int]:
        """(prompt tokens of the conversation as sent, max_tokens) — sets the latter in ``sampling``.

        A request that cannot fit even without sources is a 400 here, before any search.
        """
        cfg = self.config
        # vLLM reads max_completion_tokens first, then max_tokens; the body, not `sampling`, says
        # whether the client chose one (parse fills in the router's default)
        param = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        requested = body.get(param)
        if requested is not None and (isinstance(requested, bool) or not isinstance(requested, int) or requested < 1):
            raise LLMRequestError(400, f"`{param}` must be a positive integer, got {requested!r}", param=param)
        try:
            question_tokens, max_tokens = request_max_tokens(self.count_tokens, messages, max_model_len=cfg.max_model_len,
                                                             requested=requested, default=cfg.default_max_tokens)
        except ContextOverflowError as e:
            raise LLMRequestError(400, e.message, param=param if e.param == "max_tokens" else e.param) from None
        sampling.pop("max_completion_tokens", None)
        sampling["max_tokens"] = max_tokens
        return question_tokens, max_tokens

    async def plan(self, body: Any) -> dict:
        """Everything before generation: parse, retrieve, route, build the LLM messages."""
        messages, query, sampling, stream = self.parse(body)
        if self.count_tokens is not None:
            question_tokens, max_tokens = self.limit_tokens(body, messages, sampling)
        sources, timings = await self.retrieve(query)
        cfg = self.config
        route = choose_route(sources, cfg.relevance_threshold, cfg.fallback)
        cited = cited_sources(sources, cfg.relevance_threshold) if route == "rag" else []
        llm_messages, budget, refusal = messages, None, cfg.refusal_text
        if self.count_tokens is None:
            if route == "rag":
                llm_messages = grounded_messages(messages, cited, cfg.max_source_chars)
        elif route == "rag":
            fit = fit_sources(self.count_tokens, messages, cited, max_source_chars=cfg.max_source_chars,
                              max_model_len=cfg.max_model_len, max_tokens=max_tokens,
                              min_source_tokens=cfg.min_source_tokens)
            budget = fit.report(cfg.max_model_len, max_tokens)
            cited, llm_messages = fit.sources, fit.messages
            if not cited:
                # The question fits but leaves no room for even part of a source: the fallback
                # policy decides, as for a question without relevant sources.
                route = cfg.fallback
                budget["note"] = "no source fits beside the question in the model's context"
                refusal = (f"I can't answer from the documents: the question leaves no room for sources in the "
                           f"model's {cfg.max_model_len}-token context. Shorten it.")
        else:
            budget = {"max_model_len": cfg.max_model_len, "max_tokens": max_tokens, "prompt_tokens": question_tokens,
                      "dropped": [], "trimmed": []}
        answer_mode = "refuse" if route == "refuse" else "generate"
        if route == "rag" and cfg.answer_mode == "quote":
            # The sentences of the sources exactly as the prompt shows them (trimmed ones trimmed).
            choices = quote_choices(cited, cfg.max_source_chars)
            if choices:
                sampling["structured_outputs"] = {"choice": choices}
                answer_mode = "quote"
            else:  # said in the response: the sources shown have no sentence of 5+ words to quote
                answer_mode = "generate (no sentence of 5+ words in the sources shown)"
        rag = {"route": route, "threshold": cfg.relevance_threshold, "query": query, "answer_mode": answer_mode,
               "sources": [{"n": n, **s.to_dict(), "snippet": snippet(s.text)} for n, s in enumerate(cited, 1)],
               "retrieved": [s.to_dict() for s in sources], "budget": budget, "timings_ms": timings}
        return {"messages": llm_messages, "sampling": sampling, "stream": stream, "rag": rag, "refusal": refusal}

    # -- responses -------------------------------------------------------------------
    async def complete(self, body: Any) -> dict:
        return await self.answer(await self.plan(body))

    async def answer(self, plan: dict) -> dict:
        """The whole answer to a planned request, from ``plan["model"]`` when set (an experiment arm)."""
        rag = plan["rag"]
        t0 = time.perf_counter()
        if rag["route"] == "refuse":
            out = {"text": plan["refusal"], "finish_reason": "stop", "model": ROUTER_MODEL,
                   "prompt_tokens": 0, "completion_tokens": 0}
        else:
            try:
                out = await self.llm.generate(messages=plan["messages"], model=plan.get("model", self.config.model),
                                              sampling=plan["sampling"])
            except Exception as e:  # noqa: BLE001 — LLM rejections arrive wrapped by Ray; others re-raise
                raise (llm_error(e) or e) from None
        rag["timings_ms"]["generate_ms"] = (time.perf_counter() - t0) * 1e3
        return {
            "id": f"chatcmpl-rag-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": out["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": out["text"]},
                         "finish_reason": out["finish_reason"]}],
            "usage": {"prompt_tokens": out["prompt_tokens"], "completion_tokens": out["completion_tokens"],
                      "total_tokens": out["prompt_tokens"] + out["completion_tokens"]},
            "rag": rag,
        }

    async def stream(self, plan: dict) -> AsyncIterator[str]:
        """SSE lines of ``chat.completion.chunk`` objects; the first and last chunks carry ``rag``.

        Call :meth:`plan` first, so bad requests and a down index become status codes, not a broken stream.
        """
        rag = plan["rag"]
        cid, created = f"chatcmpl-rag-{uuid.uuid4().hex}", int(time.time())
        model = self.config.model or ROUTER_MODEL

        def chunk(delta: dict, finish: str | None = None, extra: dict | None = None) -> str:
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **(extra or {})}
            return f"data: {json.dumps(obj)}\n\n"

        yield chunk({"role": "assistant", "content": ""}, extra={"rag": rag})
        t0 = time.perf_counter()
        if rag["route"] == "refuse":
            yield chunk({"content": plan["refusal"]})
        else:
            try:
                async for delta in self.llm.generate_stream(messages=plan["messages"],
                                                            model=plan.get("model", self.config.model),
                                                            sampling=plan["sampling"]):
                    yield chunk({"content": delta})
            except Exception as e:  # noqa: BLE001 — headers are sent: report in-band, as OpenAI's servers do
                err = llm_error(e) or LLMRequestError(500, f"generation failed: {type(e).__name__}: {e}",
                                                      "server_error")
                yield f"data: {json.dumps(err.to_body())}\n\n"
                yield "data: [DONE]\n\n"
                return
        rag["timings_ms"]["generate_ms"] = (time.perf_counter() - t0) * 1e3
        yield chunk({}, finish="stop", extra={"rag": rag})
        yield "data: [DONE]\n\n"
