"""The LLM deployment: one vLLM engine (AsyncLLM) per Ray Serve replica, speaking OpenAI over HTTP.

Why our own deployment rather than ``ray.serve.llm``: the replica serves vLLM's *own*
OpenAI FastAPI app (``vllm serve``'s routes, validation and error bodies) directly, so
there is one Serve hop instead of ingress → LLMServer, LoRA adapters are plain local
directories served by name (vLLM ``--lora-modules``), and the bearer key / 429 guard /
handle API below sit in one small file. Engine flags come from
``LLMServeConfig.vllm_cli_args()``, the same list the bare ``vllm serve`` baseline uses.

HTTP (through Serve's proxy): ``GET /v1/models``, ``POST /v1/completions``,
``POST /v1/chat/completions`` (``stream: true`` → SSE), ``GET /health``, plus vLLM's other
routes (``/tokenize``, ...), every one but ``/health`` behind the bearer key when
``api_key_env`` is set. Errors are OpenAI-shaped 4xx bodies; overload → 429 with
``Retry-After`` once the replica holds ``admission_limit()`` generation requests, counted over
HTTP requests and handle calls together (Serve's own limits are sized never to answer first).

Handle API (for the RAG router or any deployment that holds a DeploymentHandle to this one)::

    llm = serve.get_deployment_handle("LLMDeployment", app_name="llmflow-llm")  # or get it via .bind()
    out = await llm.generate.remote(messages=[{"role": "user", "content": "hi"}],
                                    sampling={"max_tokens": 64, "temperature": 0.0})
    out["text"], out["finish_reason"], out["prompt_tokens"], out["completion_tokens"], out["model"]
    out = await llm.generate.remote(prompt="def f(", model="tiny-sft", sampling={"max_tokens": 16})
    async for delta in llm.options(stream=True).generate_stream.remote(messages=msgs, sampling={...}):
        ...                                   # text deltas as they are decoded
    names = await llm.models.remote()         # base model name first, then adapter names

``model`` defaults to the base model; pass an adapter's name to use it. ``sampling`` takes
the OpenAI request fields (max_tokens, temperature, top_p, top_k, seed, stop, logprobs, ...)
and is validated exactly as the HTTP routes validate them. A rejected request raises
``serve.errors.LLMRequestError`` (``.status_code``, ``.message``, ``.type``): pass it on as is;
a full replica raises it with 429 / ``rate_limit_exceeded``.
"""
from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

from ray import serve

from serve.errors import Admission, GuardMiddleware, LLMRequestError, rate_limited
from serve.llm.config import LLMServeConfig


@serve.ingress()  # the ASGI app is vLLM's, built on the replica once the engine is up
class LLMDeployment:
    async def __init__(self, config: LLMServeConfig | dict):
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.entrypoints.launchers.cli_args import (
            make_arg_parser,
            validate_parsed_serve_args,
        )
        from vllm.usage.usage_lib import UsageContext
        from vllm.utils.argparse_utils import FlexibleArgumentParser
        from vllm.v1.engine.async_llm import AsyncLLM
        from vllm.v1.metrics.ray_wrappers import RayPrometheusStatLogger

        self.config = LLMServeConfig.model_validate(config)
        self._api_key = self.config.api_key()
        # One count for HTTP requests and handle calls: the router's traffic and direct clients
        # share the engine, so they share its admission limit.
        self.admission = Admission(self.config.admission_limit())
        if self.config.num_gpus == 0:
            # Ray set OMP_NUM_THREADS to this replica's num_cpus (1); the engine-core child inherits
            # our environment, so say here how many threads its forward passes get.
            os.environ["OMP_NUM_THREADS"] = str(self.config.engine_threads or os.cpu_count() or 1)
        parser = make_arg_parser(FlexibleArgumentParser(prog="llmflow-serve"))
        args = parser.parse_args(self.config.vllm_cli_args())
        args.model = args.model_tag  # what `vllm serve MODEL` does with the positional
        validate_parsed_serve_args(args)
        self._args = args
        engine_args = AsyncEngineArgs.from_cli_args(args)
        vllm_config = engine_args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER)
        # RayPrometheusStatLogger puts TTFT, TPOT, queue depth and spec-decode acceptance on
        # Ray's metrics endpoint next to Serve's own request metrics.
        self.engine = AsyncLLM.from_vllm_config(vllm_config, usage_context=UsageContext.OPENAI_API_SERVER,
                                                stat_loggers=[RayPrometheusStatLogger],
                                                disable_log_stats=False)
        self._state = None
        self._loaded: dict[str, str] = {}  # adapters added while serving (load_adapter): name -> directory

    async def __serve_build_asgi_app__(self):
        from vllm.entrypoints.launchers.api_server.app_state import init_app_state
        from vllm.entrypoints.launchers.app import build_app

        supported = await self.engine.get_supported_tasks()
        app = build_app(self._args, supported, self.engine.model_config)
        await init_app_state(self.engine, app.state, self._args, supported)
        self._state = app.state
        # Wrapped around vLLM's app (whose middleware stack is already built): rejected
        # requests never reach vLLM's routes.
        return GuardMiddleware(app, api_key=self._api_key, admission=self.admission)

    async def check_health(self) -> None:
        """Serve calls this every health_check_period_s; raising makes Serve replace the replica."""
        await self.engine.check_health()

    def __del__(self):
        # Serve calls this on graceful shutdown: stop the engine-core process with us.
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.shutdown()

    # -- handle API ------------------------------------------------------------------
    async def models(self) -> list[str]:
        static = [a.name for a in self.config.adapters]
        return [self.config.served_model_name] + static + [n for n in self._loaded if n not in static]

    async def load_adapter(self, name: str, path: str) -> list[str]:
        """Serve the LoRA adapter in ``path`` under ``name`` from now on, on the running engine (vLLM's
        runtime LoRA load: no restart, requests in flight carry on): how the flywheel puts a candidate
        beside the champion. The engine must have started with LoRA on (at least one adapter in the
        config). Loads on the replica the call reaches: with several replicas, list the adapter in the
        config instead. Returns the names now served."""
        from vllm.entrypoints.serve.engine.protocol import ErrorResponse
        from vllm.entrypoints.serve.lora.protocol import LoadLoRAAdapterRequest

        if not self.config.adapters:
            raise LLMRequestError(400, "this engine started without LoRA (llm.adapters is empty), so it cannot take "
                                       f"adapter {name!r} while serving: list an adapter in llm.adapters and redeploy")
        if self._state is None:
            raise RuntimeError("LLMDeployment is not initialised yet (its ASGI app has not been built)")
        out = await self._state.openai_serving_models.load_lora_adapter(
            LoadLoRAAdapterRequest(lora_name=name, lora_path=str(path)))
        if isinstance(out, ErrorResponse):
            raise LLMRequestError(out.error.code, f"loading adapter {name!r} from {path}: {out.error.message}",
                                  out.error.type)
        self._loaded[name] = str(path)
        return await self.models()

    async def generate(self, prompt: str | None = None, messages: list[dict] | None = None,
                       model: str | None = None, sampling: dict[str, Any] | None = None) -> dict[str, Any]:
        """One completion (``prompt``) or chat turn (``messages``); returns text + usage."""
        if not self.admission.try_enter():
            raise rate_limited(self.admission.busy_message())
        try:
            resp = await self._call(prompt, messages, model, sampling, stream=False)
        finally:
            self.admission.leave()
        choice = resp.choices[0]
        text = choice.message.content if messages is not None else choice.text
        return {"text": text or "", "finish_reason": choice.finish_reason, "model": resp.model,
                "prompt_tokens": resp.usage.prompt_tokens, "completion_tokens": resp.usage.completion_tokens}

    async def generate_stream(self, prompt: str | None = None, messages: list[dict] | None = None,
                              model: str | None = None, sampling: dict[str, Any] | None = None) -> AsyncIterator[str]:
        """Like ``generate`` but yields text deltas; call with ``handle.options(stream=True)``."""
        if not self.admission.try_enter():
            raise rate_limited(self.admission.busy_message())
        try:
            async for delta in self._deltas(prompt, messages, model, sampling):
                yield delta
        finally:  # also when the caller stops early: the slot frees with the stream
            self.admission.leave()

    async def _deltas(self, prompt, messages, model, sampling) -> AsyncIterator[str]:
        stream = await self._call(prompt, messages, model, sampling, stream=True)
        async for line in stream:
            for event in line.split("\n\n"):
                data = event.removeprefix("data: ").strip()
                if not data or data == "[DONE]":
                    continue
                chunk = json.loads(data)
                if "error" in chunk:
                    err = chunk["error"]
                    raise LLMRequestError(int(err.get("code") or 500), err.get("message", ""), err.get("type", ""))
                for choice in chunk.get("choices", []):
                    delta = choice.get("delta", {}).get("content") if messages is not None else choice.get("text")
                    if delta:
                        yield delta

    async def _call(self, prompt, messages, model, sampling, stream: bool):
        from pydantic import ValidationError
        from vllm.entrypoints.openai.chat_completion.protocol import (
            ChatCompletionRequest,
        )
        from vllm.entrypoints.openai.completion.protocol import CompletionRequest
        from vllm.entrypoints.serve.engine.protocol import ErrorResponse
        from vllm.exceptions import VLLMClientError

        if self._state is None:
            raise RuntimeError("LLMDeployment is not initialised yet (its ASGI app has not been built)")
        if (prompt is None) == (messages is None):
            raise LLMRequestError(400, "pass exactly one of `prompt` (completion) or `messages` (chat)")
        body = {**(sampling or {}), "model": model or self.config.served_model_name, "stream": stream}
        try:
            if messages is not None:
                serving = self._state.openai_serving_chat
                resp = await serving.create_chat_completion(ChatCompletionRequest(messages=messages, **body), None)
            else:
                serving = self._state.openai_serving_completion
                resp = await serving.create_completion(CompletionRequest(prompt=prompt, **body), None)
        except ValidationError as e:
            raise LLMRequestError(400, str(e)) from None
        except (ValueError, VLLMClientError) as e:  # vLLM raises some request errors instead of returning them
            err = serving.create_error_response(e).error
            raise LLMRequestError(err.code, err.message, err.type) from None
        if isinstance(resp, ErrorResponse):
            raise LLMRequestError(resp.error.code, resp.error.message, resp.error.type)
        return resp


def llm_deployment(config: LLMServeConfig, api_key: str | None = None):
    """The LLMDeployment with this config's replica count, resources, limits and health checks.

    ``api_key`` (e.g. a flow's key file) overrides the caller's ``api_key_env`` variable."""
    from ray.serve.config import BackpressureConfig

    env = dict(config.env)
    if config.cpu_preload and config.num_gpus == 0:
        from components.cpu_preload import preload_env

        # In the runtime_env, not os.environ: a preload only takes effect when a process is exec'd
        # with it, and Ray execs the replica's worker process with these variables (the engine-core
        # child that vLLM spawns inherits them).
        env.update(preload_env(env.get("LD_PRELOAD")))
    if config.worker_niceness is not None:
        # Read by Ray's core worker when the replica's process starts; the engine core inherits it.
        env.setdefault("RAY_worker_niceness", str(config.worker_niceness))
    if config.api_key_env and config.api_key_env not in env:
        # The replica reads the key from its own environment; forward the caller's value so
        # a local `start()` works. On a cluster, set it in the runtime_env / pod instead.
        env[config.api_key_env] = api_key or config.api_key()
    return serve.deployment(LLMDeployment).options(
        num_replicas=config.num_replicas,
        max_ongoing_requests=config.ongoing_limit(),
        max_queued_requests=config.max_queued_requests,
        # Only reachable with a bounded max_queued_requests: then too, say "retry", not "down".
        backpressure_config=BackpressureConfig(status_code=429, retry_after_s=1),
        health_check_period_s=config.health_check_period_s,
        health_check_timeout_s=config.health_check_timeout_s,
        # Engine start (weights + KV cache + warm-up) takes ~40-80 s on 2 CPU cores.
        graceful_shutdown_timeout_s=20,
        ray_actor_options={"num_cpus": config.num_cpus, "num_gpus": config.num_gpus,
                           "runtime_env": {"env_vars": env}},
    )
