"""OpenAI-style errors: the exception handle callers get, and the ASGI guards in front of vLLM.

vLLM's own OpenAI layer already answers malformed JSON, unknown models, too-long prompts and
out-of-range sampling parameters with 4xx OpenAI error bodies. What it lacks, and what lives
here: an OpenAI-shaped 401 for a missing/wrong bearer key (vLLM's says ``{"error":
"Unauthorized"}``, which the ``openai`` client cannot parse), and a 429 once too many
requests wait inside the engine, so overload sheds early instead of queueing without bound.
Serve's own ``max_queued_requests`` answers 503 in front of that.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

GUARDED_PREFIXES = ("/v1",)  # /health stays open for load balancers and probes
GENERATION_PATHS = ("/v1/completions", "/v1/chat/completions")


def error_body(message: str, type_: str, code: int, param: str | None = None) -> dict[str, Any]:
    """The JSON body OpenAI (and the ``openai`` client) use for errors."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class LLMRequestError(Exception):
    """Raised through a DeploymentHandle when vLLM rejects a request (bad params, unknown model, ...).

    Carries the HTTP status the same request would get over HTTP, so a router in front
    can pass it on unchanged. Picklable: only plain attributes.
    """

    def __init__(self, status_code: int, message: str, type_: str = "invalid_request_error"):
        super().__init__(f"{status_code} {type_}: {message}")
        self.status_code = status_code
        self.message = message
        self.type = type_

    def __reduce__(self):
        return (LLMRequestError, (self.status_code, self.message, self.type))

    def to_body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.status_code)


Send = Callable[[dict], Awaitable[None]]


async def _send_json(send: Send, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
    raw = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    hdrs += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})


class GuardMiddleware:
    """Pure ASGI middleware: bearer-key check on /v1/*, then a 429 once the engine's wait list is full.

    ``max_inflight`` counts generation requests inside this replica (streaming ones until
    their last byte); None turns shedding off.
    """

    def __init__(self, app, api_key: str | None = None, max_inflight: int | None = None):
        self.app = app
        self._key_hash = hashlib.sha256(api_key.encode()).digest() if api_key else None
        self.max_inflight = max_inflight
        self.inflight = 0

    def __getattr__(self, name):
        # Serve registers exception handlers and reads routes on the app it is given:
        # forward those to the wrapped FastAPI app.
        if name == "app":
            raise AttributeError(name)
        return getattr(self.app, name)

    def _authorized(self, scope: dict) -> bool:
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer":
                    return False
                return secrets.compare_digest(hashlib.sha256(token.encode()).digest(), self._key_hash)
        return False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") == "OPTIONS":
            return await self.app(scope, receive, send)
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        if self._key_hash is not None and path.startswith(GUARDED_PREFIXES) and not self._authorized(scope):
            return await _send_json(send, 401, error_body(
                "Missing or invalid API key: send 'Authorization: Bearer <key>'.", "authentication_error", 401))
        if not path.startswith(GENERATION_PATHS):
            return await self.app(scope, receive, send)
        if self.max_inflight is not None and self.inflight >= self.max_inflight:
            return await _send_json(send, 429, error_body(
                f"Server busy: {self.inflight} requests in flight on this replica; retry shortly.",
                "rate_limit_exceeded", 429), headers={"retry-after": "1"})
        self.inflight += 1
        try:
            return await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
