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

import os
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
        self.store = open_index(self.config.index_dir, read_only=True, timeout_s=self.config.search_timeout_s,
                                lock_wait_s=self.config.lock_wait_s)
        embedder = shared_embedder()
        embedder.embed(["warm up"])  # the first encode is several times slower; pay it at start
        self.core = RouterCore(self.config, Retriever(self.store, embedder, self.config.retrieval), HandleLLM(llm))

    @api.post("/v1/chat/completions")
    async def chat_completions(self, request: Request):
        try:
            body = await request.json()
        except ValueError as e:
            err = RouterError(400, f"request body is not valid JSON: {e}")
            return JSONResponse(err.to_body(), status_code=err.status_code)
        try:
            if isinstance(body, dict) and body.get("stream"):
                plan = await self.core.plan(body)
                return StreamingResponse(self.core.stream(plan), media_type="text/event-stream")
            return JSONResponse(await self.core.complete(body))
        except RouterError as e:
            return JSONResponse(e.to_body(), status_code=e.status_code)

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
    return build_router(RouterConfig.model_validate(router), build_llm(LLMServeConfig.model_validate(llm)))
