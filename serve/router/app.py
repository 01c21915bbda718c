"""The RAG router: a Ray Serve ingress (FastAPI) in front of the LLM deployment.

``POST /v1/chat/completions`` (OpenAI-compatible, ``stream: true`` → SSE) embeds the last user
message, runs hybrid search on the flow's Qdrant index, and routes: a grounded prompt with
numbered sources when the best source clears ``relevance_threshold``, else plain generation or
"I don't know" (``fallback``). Every response carries a ``rag`` field: route, cited sources
(n, id, doc_id, title, score, relevance), all retrieved candidates and the latency split.
Errors (all OpenAI-shaped ``{"error": {...}}``): malformed/empty query 400, oversized 413, index
unreachable or slower than ``search_timeout_s`` 503, LLM rejections passed on with their status,
before the first streamed token too. Every route but ``/health`` takes the LLM app's bearer key
(401 without it). Overload: past ``max_inflight`` chat requests per replica, or when the LLM is
full, 429 with ``Retry-After``.

Run it next to the LLM app::

    serve run serve.router.app:build_app router='{"index_dir": "<rag.index artifact>"}' llm='{"model": "<model dir>"}'

or from Python: ``serve.run(build_router(RouterConfig(...), llm), ...)`` where ``llm`` is the
bound LLM deployment (``serve.llm.app.build_llm``) or a ``DeploymentHandle`` to a running one.

Embedded Qdrant (Edge, or local mode) allows one process per index path; each replica therefore
serves a private copy of the index artifact (Edge: its snapshot unpacked) and, for Edge, swaps to
a rebuilt artifact atomically while serving (``index_reload_s``; ``components.rag.live_index``).
A Qdrant server (``QDRANT_URL``) needs no copy.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from ray import serve
from starlette.exceptions import HTTPException

from serve.errors import LLMRequestError, error_body, rate_limited, retry_headers
from serve.router.config import RouterConfig
from serve.router.core import ROUTER_MODEL, HandleLLM, RouterCore

CHAT_PATH = "/v1/chat/completions"
log = logging.getLogger("ray.serve")
PAGE_PATHS = ("/", "/health")  # the chat page holds no data: it asks for the key itself
api = FastAPI(title="llmflow RAG router")


# FastAPI's own errors (unknown route 404, wrong method 405, body validation 422) answer
# {"detail": ...}; the openai client and every other route here speak {"error": {...}}.
@api.exception_handler(HTTPException)
async def _http_error(request: Request, exc: HTTPException):
    return JSONResponse(error_body(str(exc.detail), "invalid_request_error", exc.status_code),
                        status_code=exc.status_code, headers=exc.headers)


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError):
    return JSONResponse(error_body(f"invalid request: {exc.errors()}", "invalid_request_error", 422), 422)


def error_response(err: LLMRequestError) -> JSONResponse:
    return JSONResponse(err.to_body(), status_code=err.status_code, headers=retry_headers(err.status_code))


class ShedAsRateLimit:
    """LLM client wrapper: Serve's queue-limit rejection of the handle call (``BackPressureError``)
    becomes the same 429 the LLM's own admission guard raises, not a 500/503."""

    def __init__(self, llm):
        self.llm = llm

    async def generate(self, **kwargs) -> dict[str, Any]:
        from ray.serve.exceptions import BackPressureError

        try:
            return await self.llm.generate(**kwargs)
        except BackPressureError as e:
            raise rate_limited(f"the LLM is at capacity ({e.message}); retry shortly") from None

    async def generate_stream(self, **kwargs):
        from ray.serve.exceptions import BackPressureError

        try:
            async for delta in self.llm.generate_stream(**kwargs):
                yield delta
        except BackPressureError as e:
            raise rate_limited(f"the LLM is at capacity ({e.message}); retry shortly") from None


async def _head_or_error(lines) -> list[str] | LLMRequestError:
    """The stream's lines up to its first generated one; an error there becomes the response's status.

    Until a token exists nothing is lost by waiting, and a rejection (429 from a full LLM, 400)
    then reaches the client as a status code it can act on instead of a 200 with an error inside.
    """
    head = []
    async for line in lines:
        head.append(line)
        if not line.startswith("data: {"):  # [DONE]
            break
        obj = json.loads(line[6:])
        if "error" in obj:
            err = obj["error"]
            return LLMRequestError(int(err.get("code") or 500), err.get("message", ""), err.get("type", "server_error"))
        if any((c.get("delta") or {}).get("content") or c.get("finish_reason") for c in obj.get("choices", [])):
            break
    return head


async def _chain(head: list[str], rest):
    for line in head:
        yield line
    async for line in rest:
        yield line


# Everything the routes call is defined above the class: @serve.ingress freezes (pickles) the
# FastAPI app, and with it the route functions' globals, at class definition time.
@serve.deployment
@serve.ingress(api)
class RAGRouter:
    def __init__(self, llm, config: RouterConfig | dict, api_key_env: str | None = None):
        from components.rag.embed import shared_embedder
        from components.rag.retriever import Retriever, open_index
        from flows.engine.store import open_artifact

        self.config = RouterConfig.model_validate(config)
        if not self.config.index_dir:
            raise ValueError("router.index_dir is not set: point it at a rag.index artifact directory")
        # An s3:// index (the artifact root of a cluster without a shared disk) is fetched to this node.
        index_dir = open_artifact(self.config.index_dir)
        self.store = open_index(index_dir, read_only=True, timeout_s=self.config.search_timeout_s,
                                lock_wait_s=self.config.lock_wait_s, reload_s=self.config.index_reload_s)
        embedder = shared_embedder()
        embedder.embed(["warm up"])  # the first encode is several times slower; pay it at start
        self.core = RouterCore(self.config, Retriever(self.store, embedder, self.config.retrieval),
                               ShedAsRateLimit(HandleLLM(llm)))
        self._api_key_env = api_key_env
        self._auth_required = bool(api_key_env)
        self.evaluator, self.prompt_versions, self.arms = None, {}, None
        self._shadow_tasks: set = set()
        if self.config.online_eval is not None:
            # Imported here: Serve ships this class by value, without the module's other globals.
            from serve.router.app import _start_online_eval

            self.evaluator, self.prompt_versions = _start_online_eval(self.config.online_eval, embedder)
            self.arms = self.config.online_eval.experiment_arms
        self.control = None
        if self.config.control_path:
            from serve.router.control import ControlWatcher

            self.control = ControlWatcher(self.config.control_path, self.config.control_poll_s)
            self._follow_control()

    async def __serve_build_asgi_app__(self):
        """Serve calls this after __init__: the FastAPI app behind the key check and the in-flight guard."""
        from serve.errors import GuardMiddleware

        key = None
        if self._api_key_env:
            key = os.environ.get(self._api_key_env)
            if not key:
                raise ValueError(f"the router needs the API key in ${self._api_key_env} (build_router forwards the "
                                 "caller's value): export it where the router is built")
        return GuardMiddleware(self.app, api_key=key, max_inflight=self.config.max_inflight,
                               limited_paths=(CHAT_PATH,), open_paths=PAGE_PATHS)

    def _follow_control(self) -> None:
        """Take a switch of the live routing state (serve.router.control) between two requests: the
        champion's model/version and the candidate arm change here, the replica never restarts."""
        state = self.control.poll() if self.control is not None else None
        if state is None:
            return
        if state.arms.mode != "off" and self.evaluator is None:
            log.warning("routing state asks for a %s arm but online_eval is off: ignored", state.arms.mode)
            state = state.model_copy(update={"arms": state.arms.model_copy(update={"mode": "off"})})
        old_candidate = self.arms.candidate_model if self.arms is not None else None
        self.config = self.config.model_copy(update={"model": state.model, "model_version": state.model_version})
        self.core.config, self.arms = self.config, state.arms
        if self.evaluator is not None and (state.arms.candidate_model != old_candidate or state.arms.mode == "off"):
            self.evaluator.reset_arms()  # a new candidate (or champion) starts its evidence from zero
        log.info("router routing switched: model=%s version=%s arm=%s/%s (%s)", state.model, state.model_version,
                 state.arms.mode, state.arms.candidate_model, state.reason)

    @api.get("/")
    async def chat_page(self, request: Request):
        from serve.router.page import render_chat_page

        self._follow_control()

        return HTMLResponse(render_chat_page(request.scope.get("root_path", ""), self._auth_required,
                                             self.config.model or ROUTER_MODEL, self.config.model_version))

    @api.post(CHAT_PATH)
    async def chat_completions(self, request: Request):
        try:
            body = await request.json()
        except ValueError as e:
            return error_response(LLMRequestError(400, f"request body is not valid JSON: {e}"))
        t0_ns = time.time_ns()
        self._follow_control()
        arm, model = self._arm_of(body)
        try:
            plan = await self.core.plan(body)
            plan["model"], plan["rag"]["arm"] = model, arm
            if plan["stream"]:
                lines = self.core.stream(plan)
                head = await _head_or_error(lines)
                if isinstance(head, LLMRequestError):
                    raise head
                return StreamingResponse(self._observed_stream(body, plan, t0_ns, _chain(head, lines)),
                                         media_type="text/event-stream")
            result = await self.core.answer(plan)
        except LLMRequestError as e:
            if e.status_code >= 500 and self.evaluator is not None:  # the arm failed, not the client
                self.evaluator.count_error(arm)
            return error_response(e)
        self._observe(body, result["id"], result["choices"][0]["message"]["content"], t0_ns, plan,
                      result.get("usage") or {})
        return JSONResponse(result)

    def _arm_of(self, body) -> tuple[str, str | None]:
        """(arm, model to ask for): A/B sends a sticky share of users (the OpenAI `user` field; a request
        without one is its own unit) to the candidate; otherwise everyone gets the champion."""
        arms = self.arms
        if arms is None or arms.mode != "ab":
            return "primary", self.config.model
        from serve.online_eval.evaluator import unit_hash

        user = body.get("user") if isinstance(body, dict) else None
        unit = user if isinstance(user, str) and user else uuid.uuid4().hex
        if unit_hash(unit, "ab") < arms.candidate_share:
            return "candidate", arms.candidate_model
        return "primary", self.config.model

    async def _observed_stream(self, body: dict, plan: dict, t0_ns: int, lines):
        """Pass the SSE stream through, keeping the text so the online loop sees the whole answer."""
        parts, cid, done = [], None, False  # done: observed, or broken by an in-band error
        async for line in lines:
            if self.evaluator is not None and not done and line.startswith("data: {"):
                obj = json.loads(line[6:])
                if "error" in obj:  # a broken answer counts against its arm and is not traced as an answer
                    self.evaluator.count_error(plan["rag"]["arm"])
                    done = True
                cid = obj.get("id", cid)
                for choice in obj.get("choices", []):
                    parts.append(choice.get("delta", {}).get("content") or "")
            elif line.startswith("data: [DONE]") and cid is not None and not done:
                # Before the client sees the end: feedback sent the moment the answer is complete
                # must find the request.
                self._observe(body, cid, "".join(parts), t0_ns, plan, {})
                done = True
            yield line
        if cid is not None and not done:
            self._observe(body, cid, "".join(parts), t0_ns, plan, {})

    def _observe(self, body: dict, request_id: str, text: str, t0_ns: int, plan: dict, usage: dict) -> None:
        """Hand the finished request to the online loop: a queue put, nothing more on the request path.
        In shadow mode a sampled share is first answered by the candidate too, in a background task."""
        if self.evaluator is None:
            return
        from serve.online_eval.evaluator import RequestRecord, unit_hash

        rag = plan["rag"]
        record = RequestRecord(
            request_id=request_id, query=rag.get("query", ""), response=text, start_time_ns=t0_ns,
            end_time_ns=time.time_ns(), messages=body.get("messages"),
            served_messages=plan["messages"] if rag.get("route") != "refuse" else None,
            context="\n\n".join(s.get("text") or s.get("snippet", "") for s in rag.get("sources", [])),
            retrieved_ids=[str(s.get("id")) for s in rag.get("sources", [])],
            prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"),
            arm=rag.get("arm", "primary"), model=plan.get("model") or self.config.model or ROUTER_MODEL,
            model_version=(self.config.model_version or "") if rag.get("arm") != "candidate" else "",
            prompt_versions=self.prompt_versions if rag.get("route") == "rag" else {})
        arms = self.arms
        if (arms is not None and arms.mode == "shadow" and rag.get("route") != "refuse"
                and unit_hash(request_id, "shadow") < arms.candidate_share):
            self.evaluator.expect(request_id)  # a vote before the shadow copy returns waits for it
            task = asyncio.get_running_loop().create_task(self._shadow(record, plan, arms.candidate_model))
            self._shadow_tasks.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._shadow_tasks.discard)
            return
        self.evaluator.submit(record)

    async def _shadow(self, record, plan: dict, candidate: str) -> None:
        """The candidate answers the same prompt off the request path; the loop judges the pair (both
        orders) onto the champion's trace. A failing candidate never reaches the user."""
        try:
            out = await self.core.llm.generate(messages=plan["messages"], model=candidate,
                                               sampling=plan["sampling"])
        except Exception as e:  # noqa: BLE001 - counted as the candidate's error, the champion's answer stands
            log.warning("shadow candidate %s failed on %s: %s", candidate, record.request_id, e)
            self.evaluator.count_error("shadow")
            self.evaluator.submit(record)
            return
        self.evaluator.submit(record, shadow_response=out["text"])

    @api.post("/feedback")
    async def feedback(self, request: Request):
        from starlette.concurrency import run_in_threadpool

        from serve.online_eval.app import FeedbackIn, do_feedback, voter_of

        if self.evaluator is None:
            return error_response(LLMRequestError(404, "online evaluation is off for this router "
                                                       "(set router.online_eval)"))
        try:
            fb = FeedbackIn.model_validate(await request.json())
        except ValueError as e:
            return error_response(LLMRequestError(422, f"bad feedback body: {e}"))
        # The voter is whoever the key check let in, not a name the body claims: one key, one vote per request.
        fb = fb.model_copy(update={"user": voter_of(request.headers.get("authorization"), self._auth_required)})
        return await run_in_threadpool(do_feedback, self.evaluator, fb)

    @api.get("/online/metrics")
    async def online_metrics(self):
        from serve.online_eval.app import metrics_view

        if self.evaluator is None:
            return error_response(LLMRequestError(404, "online evaluation is off for this router"))
        return metrics_view(self.evaluator)

    @api.get("/v1/models")
    async def models(self):
        return {"object": "list", "data": [{"id": self.config.model or ROUTER_MODEL, "object": "model",
                                            "owned_by": "llmflow"}]}

    @api.get("/health")
    async def health(self):
        return {"status": "ok", "index": self.store.location}

    def __del__(self):
        store = getattr(self, "store", None)
        if store is not None:
            store.close()  # deletes the replica's private snapshot
        evaluator = getattr(self, "evaluator", None)
        if evaluator is not None:
            evaluator.close(timeout_s=10)


def _start_online_eval(config, embedder):
    """The in-process online evaluator, and the registered version of the RAG prompt that grounded
    answers record on their traces."""
    from components.eval.prompt_templates import RAG
    from components.tracking.mlflow_tracking import default_tracking_uri
    from components.tracking.prompts import sync_prompt
    from serve.online_eval.evaluator import OnlineEvaluator

    rag_prompt = sync_prompt(config.tracking_uri or default_tracking_uri(), "llmflow-rag", RAG)
    evaluator = OnlineEvaluator(config, embed_fn=embedder.embed if config.embed_queries else None)
    return evaluator, {"llmflow-rag": rag_prompt.uri}


def router_limit(config: RouterConfig, llm_admission_limit: int | None = None) -> int:
    """Chat requests one router replica works on at once: ``router.max_inflight``, else the LLM's
    admission limit (more would only come back 429 from it) split over the router's replicas."""
    if config.max_inflight is not None:
        return config.max_inflight
    if llm_admission_limit is None:
        from serve.llm.config import LLMServeConfig

        llm_admission_limit = LLMServeConfig().admission_limit()
    return max(1, -(-llm_admission_limit // config.num_replicas))


def build_router(config: RouterConfig, llm: Any, api_key_env: str | None = None, api_key: str | None = None,
                 llm_admission_limit: int | None = None):
    """The bound router application; ``llm`` is a bound LLM deployment or a DeploymentHandle.

    ``api_key_env`` names the variable holding the stack's key (the LLM app's); its value, or
    ``api_key`` when given (a flow's key file), is forwarded to the replicas. None = no auth.
    """
    from ray.serve.config import BackpressureConfig

    # Forward the caller's Qdrant server settings so a local start reaches the same server.
    env = {k: os.environ[k] for k in ("QDRANT_URL", "QDRANT_API_KEY") if os.environ.get(k)}
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    if api_key_env:
        key = api_key or os.environ.get(api_key_env)
        if not key:
            raise ValueError(f"api_key_env={api_key_env!r} but that env var is empty or unset: export "
                             f"{api_key_env}=<the LLM app's key>, or set api_key_env: null to serve without auth")
        env[api_key_env] = key
    limit = router_limit(config, llm_admission_limit)
    config = config.model_copy(update={"max_inflight": limit})
    return RAGRouter.options(
        num_replicas=config.num_replicas,
        # As for the LLM app (serve/llm/config.py): the replica takes more than the guard admits, so
        # excess chat requests reach the guard's 429 instead of Serve's queue, which is then never
        # full (unbounded; a 429 frees its slot in microseconds). Feedback and metrics are quick.
        max_ongoing_requests=4 * limit + 16,
        max_queued_requests=-1,
        backpressure_config=BackpressureConfig(status_code=429, retry_after_s=1),
        ray_actor_options={"num_cpus": config.num_cpus, "runtime_env": {"env_vars": env}},
    ).bind(llm, config.model_dump(), api_key_env)


def build_app(args: dict[str, Any]):
    """``serve run serve.router.app:build_app router={...} llm={...}``: router + its own LLM deployment,
    both behind the llm config's ``api_key_env``."""
    from serve.llm.app import build_llm
    from serve.llm.config import LLMServeConfig

    unknown = set(args) - {"router", "llm"}
    if unknown:
        raise ValueError(f"unknown arguments {sorted(unknown)}; pass router=<RouterConfig> and llm=<LLMServeConfig>")
    import json

    # `serve run ... key=value` passes strings; Python callers pass dicts
    router, llm = ({} if v is None else json.loads(v) if isinstance(v, str) else v
                   for v in (args.get("router"), args.get("llm")))
    llm_config = LLMServeConfig.model_validate(llm)
    if not {"tokenizer", "max_model_len"} & set(router):  # budget prompts for this LLM unless told otherwise
        router = {**router, "tokenizer": llm_config.engine_kwargs.get("tokenizer") or llm_config.require_model(),
                  "max_model_len": llm_config.max_model_len}
    return build_router(RouterConfig.model_validate(router), build_llm(llm_config), api_key_env=llm_config.api_key_env,
                        llm_admission_limit=llm_config.admission_limit() * llm_config.num_replicas)
