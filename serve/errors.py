"""OpenAI-style errors: the exception handle callers get, and the ASGI guard in front of every app.

vLLM's own OpenAI layer already answers malformed JSON, unknown models, too-long prompts and
out-of-range sampling parameters with 4xx OpenAI error bodies. What it lacks, and what lives
here, shared by the LLM app and the RAG router:

- an OpenAI-shaped 401 for a missing/wrong bearer key on every route but ``/health`` (vLLM's
  says ``{"error": "Unauthorized"}``, which the ``openai`` client cannot parse);
- admission control: a 429 with ``Retry-After`` once a replica holds its limit of generation
  requests, so overload sheds early instead of queueing without bound. The LLM replica counts
  HTTP requests and handle calls (the router's) against the same ``Admission``.

Serve's own queue limit would answer a plain-text 503 (or 429); the deployments' Serve limits
are sized so that it is never reached before these guards (see ``LLMServeConfig``).
"""
from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

OPEN_PATHS = ("/health",)  # stays open for load balancers and probes
GENERATION_PATHS = ("/v1/completions", "/v1/chat/completions")
RETRY_AFTER_S = 1  # a slot frees as soon as one generation finishes: seconds, not minutes


def error_body(message: str, type_: str, code: int, param: str | None = None) -> dict[str, Any]:
    """The JSON body OpenAI (and the ``openai`` client) use for errors."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def retry_headers(status: int) -> dict[str, str]:
    """``Retry-After`` for the statuses a client should retry (429, 503); nothing otherwise."""
    return {"retry-after": str(RETRY_AFTER_S)} if status in (429, 503) else {}


class LLMRequestError(Exception):
    """A rejected completion/chat request: the HTTP status and OpenAI error body it is answered with.

    The one error type of the stack. The LLM deployment raises it through a DeploymentHandle
    when vLLM rejects a request (bad params, unknown model, full replica), with the status the
    same request would get over HTTP, so a router in front can pass it on unchanged; the RAG
    router raises it for its own rejections (bad query, index down). Picklable: only plain attributes.
    """

    def __init__(self, status_code: int, message: str, type_: str = "invalid_request_error",
                 param: str | None = None):
        super().__init__(f"{status_code} {type_}: {message}")
        self.status_code = status_code
        self.message = message
        self.type = type_
        self.param = param

    def __reduce__(self):
        return (LLMRequestError, (self.status_code, self.message, self.type, self.param))

    def to_body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.status_code, self.param)


def rate_limited(message: str) -> LLMRequestError:
    return LLMRequestError(429, message, "rate_limit_exceeded")


class Admission:
    """Counts generation requests inside one replica; ``None`` as limit admits everything.

    Single event loop per replica: plain integer arithmetic, no lock needed.
    """

    def __init__(self, limit: int | None):
        self.limit = limit
        self.inflight = 0

    def try_enter(self) -> bool:
        if self.limit is not None and self.inflight >= self.limit:
            return False
        self.inflight += 1
        return True

    def leave(self) -> None:
        self.inflight -= 1

    def busy_message(self) -> str:
        return (f"Server busy: {self.inflight} requests in flight on this replica (limit {self.limit}); "
                f"retry after {RETRY_AFTER_S} s.")


Send = Callable[[dict], Awaitable[None]]


async def send_json(send: Send, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
    raw = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    hdrs += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})


class GuardMiddleware:
    """Pure ASGI middleware: bearer-key check on every path but ``open_paths``, then admission
    (429 + ``Retry-After``) on ``limited_paths``.

    ``max_inflight`` (or a shared ``admission``) counts requests on ``limited_paths`` inside
    this replica, streaming ones until their last byte; None turns shedding off.
    """

    def __init__(self, app, api_key: str | None = None, max_inflight: int | None = None,
                 admission: Admission | None = None, open_paths: tuple[str, ...] = OPEN_PATHS,
                 limited_paths: tuple[str, ...] = GENERATION_PATHS):
        self.app = app
        self._key_hash = hashlib.sha256(api_key.encode()).digest() if api_key else None
        self.admission = admission if admission is not None else Admission(max_inflight)
        self.open_paths, self.limited_paths = open_paths, limited_paths

    @property
    def inflight(self) -> int:
        return self.admission.inflight

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
                return secrets.compare_digest(hashlib.sha256(token.strip().encode()).digest(), self._key_hash)
        return False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") == "OPTIONS":
            return await self.app(scope, receive, send)
        path = scope["path"].removeprefix(scope.get("root_path", "")) or "/"
        if self._key_hash is not None and path not in self.open_paths and not self._authorized(scope):
            return await send_json(send, 401, error_body(
                "Missing or invalid API key: send 'Authorization: Bearer <key>'.", "authentication_error", 401))
        if not path.startswith(self.limited_paths):
            return await self.app(scope, receive, send)
        if not self.admission.try_enter():
            return await send_json(send, 429, rate_limited(self.admission.busy_message()).to_body(),
                                   headers=retry_headers(429))
        try:
            return await self.app(scope, receive, send)
        finally:
            self.admission.leave()
