"""Unit: how the router turns overload and LLM rejections into OpenAI-shaped statuses (no cluster)."""
from __future__ import annotations

import asyncio
import json

import pytest
from ray.serve.exceptions import BackPressureError

from serve.errors import LLMRequestError
from serve.router.app import ShedAsRateLimit, _chain, _head_or_error, error_response, router_limit
from serve.router.config import RouterConfig


class FullQueueLLM:
    """An LLM handle whose Serve queue is full (max_queued_requests reached)."""

    async def generate(self, **kw):
        raise BackPressureError(num_queued_requests=4, max_queued_requests=4)

    async def generate_stream(self, **kw):
        raise BackPressureError(num_queued_requests=4, max_queued_requests=4)
        yield ""  # an async generator, like the handle's stream


def test_serve_backpressure_from_the_llm_becomes_429_not_503():
    llm = ShedAsRateLimit(FullQueueLLM())
    with pytest.raises(LLMRequestError) as e:
        asyncio.run(llm.generate(messages=[]))
    assert (e.value.status_code, e.value.type) == (429, "rate_limit_exceeded")

    async def drain():
        return [d async for d in llm.generate_stream(messages=[])]

    with pytest.raises(LLMRequestError) as e:
        asyncio.run(drain())
    assert e.value.status_code == 429


def test_429_responses_carry_retry_after_and_an_openai_body():
    resp = error_response(LLMRequestError(429, "busy", "rate_limit_exceeded"))
    assert resp.status_code == 429 and resp.headers["retry-after"] == "1"
    assert json.loads(resp.body) == {"error": {"message": "busy", "type": "rate_limit_exceeded", "param": None,
                                               "code": 429}}
    assert "retry-after" not in error_response(LLMRequestError(404, "unknown request")).headers


async def _lines(*lines):
    for line in lines:
        yield line


def _chunk(**delta) -> str:
    return "data: " + json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}) + "\n\n"


def test_an_error_before_the_first_token_becomes_the_stream_status():
    err = "data: " + json.dumps({"error": {"message": "busy", "type": "rate_limit_exceeded", "code": 429}}) + "\n\n"
    head = asyncio.run(_head_or_error(_lines(_chunk(role="assistant", content=""), err, "data: [DONE]\n\n")))
    assert isinstance(head, LLMRequestError) and (head.status_code, head.type) == (429, "rate_limit_exceeded")

    async def whole():
        lines = _lines(_chunk(role="assistant", content=""), _chunk(content="Hi"), _chunk(content="!"),
                       "data: [DONE]\n\n")
        head = await _head_or_error(lines)
        assert len(head) == 2  # waits for the first token only
        return [x async for x in _chain(head, lines)]

    assert len(asyncio.run(whole())) == 4  # nothing lost or repeated


def test_router_limit_follows_the_llm_unless_set():
    assert router_limit(RouterConfig(max_inflight=5), 100) == 5
    assert router_limit(RouterConfig(num_replicas=2), 8) == 4
    assert router_limit(RouterConfig(num_replicas=3), 8) == 3
    assert router_limit(RouterConfig()) == 32  # the default LLM's: 16 decoding + 16 waiting
