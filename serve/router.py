"""The RAG router: a Ray Serve ingress (FastAPI) in front of the LLM deployment.

``POST /v1/chat/completions`` (OpenAI-compatible, ``stream: true`` → SSE) embeds the last user
message, runs hybrid search on the flow's Qdrant index, and routes: a grounded prompt with
numbered sources when the best source clears ``relevance_threshold``, else plain generation or
"I don't know" (``fallback``). Every response carries a ``rag`` field: route, cited sources
(n, id, doc_id, title, score, relevance), all retrieved candidates and the latency split.
Errors: malformed/empty query 400, oversized 413, index unreachable or slower than
``search_timeout_s`` 503, LLM rejections passed on with their status.

Run it next to the LLM app::

    serve run serve.router:build_app router='{"index_dir": "<rag.index artifact>"}' llm='{"model": "<model dir>"}'

or from Python: ``serve.run(build_router(RouterConfig(...), llm), ...)`` where ``llm`` is the
bound LLM deployment (``serve.app.build_llm``) or a ``DeploymentHandle`` to a running one.

Local-mode Qdrant allows one process per index path; each replica therefore serves a private
snapshot of the (immutable) index artifact, taken under the path's lock — see
``components.rag.qdrant_store``. A Qdrant server (``QDRANT_URL``) needs no snapshot.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve

from serve.router_config import RouterConfig
from serve.router_core import ROUTER_MODEL, HandleLLM, RouterCore, RouterError

api = FastAPI(title="llmflow RAG router")


@serve.deployment
@serve.ingress(api)
class RAGRouter:
    def __init__(self, llm, config: RouterConfig | dict):
        from components.rag.embed import shared_embedder
        from components.rag.retriever import Retriever, open_index

        self.config = RouterConfig.model_validate(config)
        if not self.config.index_dir:
            raise ValueError("router.index_dir is not set: point it at a rag.index artifact directory")
        self.store = open_index(self.config.index_dir, read_only=True, timeout_s=self.config.search_timeout_s,
                                lock_wait_s=self.config.lock_wait_s)
        embedder = shared_embedder()
        embedder.embed(["warm up"])  # the first encode is several times slower; pay it at start
        self.core = RouterCore(self.config, Retriever(self.store, embedder, self.config.retrieval), HandleLLM(llm))
        self.evaluator, self.prompt_versions = None, {}
        if self.config.online_eval is not None:
            # Imported here: Serve ships this class by value, without the module's other globals.
            from serve.router import _start_online_eval

            self.evaluator, self.prompt_versions = _start_online_eval(self.config.online_eval, embedder)

    @api.post("/v1/chat/completions")
    async def chat_completions(self, request: Request):
        try:
            body = await request.json()
        except ValueError as e:
            err = RouterError(400, f"request body is not valid JSON: {e}")
            return JSONResponse(err.to_body(), status_code=err.status_code)
        t0_ns = time.time_ns()
        try:
            if isinstance(body, dict) and body.get("stream"):
                plan = await self.core.plan(body)
                return StreamingResponse(self._observed_stream(body, plan, t0_ns), media_type="text/event-stream")
            result = await self.core.complete(body)
        except RouterError as e:
            return JSONResponse(e.to_body(), status_code=e.status_code)
        self._observe(body, result["id"], result["choices"][0]["message"]["content"], t0_ns, result["rag"],
                      result.get("usage") or {})
        return JSONResponse(result)

    async def _observed_stream(self, body: dict, plan: dict, t0_ns: int):
        """Pass the SSE stream through, keeping the text so the online loop sees the whole answer."""
        parts, cid = [], None
        async for line in self.core.stream(plan):
            yield line
            if self.evaluator is not None and line.startswith("data: {"):
                obj = json.loads(line[6:])
                cid = obj.get("id", cid)
                for choice in obj.get("choices", []):
                    parts.append(choice.get("delta", {}).get("content") or "")
        if cid is not None:
            self._observe(body, cid, "".join(parts), t0_ns, plan["rag"], {})

    def _observe(self, body: dict, request_id: str, text: str, t0_ns: int, rag: dict, usage: dict) -> None:
        """Hand the finished request to the online loop: a queue put, nothing more on the request path."""
        if self.evaluator is None:
            return
        from serve.online_eval import RequestRecord

        self.evaluator.submit(RequestRecord(
            request_id=request_id, query=rag.get("query", ""), response=text, start_time_ns=t0_ns,
            end_time_ns=time.time_ns(), messages=body.get("messages"),
            context="\n\n".join(s.get("text", "") for s in rag.get("sources", [])),
            retrieved_ids=[str(s.get("id")) for s in rag.get("sources", [])],
            prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"),
            model=self.config.model or ROUTER_MODEL,
            prompt_versions=self.prompt_versions if rag.get("route") == "rag" else {}))

    @api.post("/feedback")
    async def feedback(self, request: Request):
        from starlette.concurrency import run_in_threadpool

        from serve.online_eval_app import FeedbackIn, do_feedback

        if self.evaluator is None:
            return JSONResponse(RouterError(404, "online evaluation is off for this router "
                                                 "(set router.online_eval)").to_body(), status_code=404)
        try:
            fb = FeedbackIn.model_validate(await request.json())
        except ValueError as e:
            return JSONResponse(RouterError(422, f"bad feedback body: {e}").to_body(), status_code=422)
        return await run_in_threadpool(do_feedback, self.evaluator, fb)

    @api.get("/online/metrics")
    async def online_metrics(self):
        from serve.online_eval_app import metrics_view

        if self.evaluator is None:
            return JSONResponse(RouterError(404, "online evaluation is off for this router").to_body(),
                                status_code=404)
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
    from serve.online_eval import OnlineEvaluator

    rag_prompt = sync_prompt(config.tracking_uri or default_tracking_uri(), "llmflow-rag", RAG)
    evaluator = OnlineEvaluator(config, embed_fn=embedder.embed if config.embed_queries else None)
    return evaluator, {"llmflow-rag": rag_prompt.uri}


def build_router(config: RouterConfig, llm: Any):
    """The bound router application; ``llm`` is a bound LLM deployment or a DeploymentHandle."""
    # Forward the caller's Qdrant server settings so a local start reaches the same server.
    env = {k: os.environ[k] for k in ("QDRANT_URL", "QDRANT_API_KEY") if os.environ.get(k)}
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    return RAGRouter.options(
        num_replicas=config.num_replicas,
        ray_actor_options={"num_cpus": config.num_cpus, "runtime_env": {"env_vars": env}},
    ).bind(llm, config.model_dump())


def build_app(args: dict[str, Any]):
    """``serve run serve.router:build_app router={...} llm={...}``: router + its own LLM deployment."""
    from serve.app import build_llm
    from serve.config import LLMServeConfig

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
    return build_router(RouterConfig.model_validate(router), build_llm(llm_config))
