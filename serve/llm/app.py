"""Build and start the LLM serving application.

Three ways in, one builder:

    serve run serve/llm/serve_config.yaml            # after `ray start --head --num-cpus 4`; edit llm.model first
    serve run serve.llm.app:build_app llm='{"model": "path/to/model"}'   # args are ServeAppConfig fields
    from serve.llm.app import start; endpoint = start(ServeAppConfig(...))  # from Python / the serve.deploy step

``build_app(args)`` is the Serve "application builder" ``serve run``/``serve deploy`` import;
``start`` also sets the HTTP port, waits until ``/health`` answers and returns the endpoint
description the flow step writes to ``endpoint.json``.
"""
from __future__ import annotations

import time
from typing import Any

from serve.llm.config import LLMServeConfig, ServeAppConfig

DEPLOYMENT_NAME = "LLMDeployment"


def build_llm(config: LLMServeConfig, api_key: str | None = None):
    """The bound LLM deployment; a router can take it as a constructor argument to get a handle.

    ``api_key`` (a flow's key file) stands in for an unset ``api_key_env`` variable."""
    from serve.llm.deployment import llm_deployment

    config.require_model()
    if api_key is None:
        config.api_key()  # fail here, in the caller, if the key's env var is missing
    return llm_deployment(config, api_key).bind(config.model_dump())


def build_app(args: dict[str, Any]):
    """Serve application builder: ``args`` are ``ServeAppConfig`` fields (only ``llm`` matters here;
    HTTP host/port live in the Serve config file's ``http_options`` when run via ``serve run``)."""
    import json

    # `serve run serve.llm.app:build_app llm='{...}'` passes strings; config files and Python pass dicts.
    args = {k: json.loads(v) if isinstance(v, str) and v.lstrip().startswith("{") else v for k, v in args.items()}
    config = ServeAppConfig.model_validate(args)
    return build_llm(config.llm)


def endpoint_info(config: ServeAppConfig) -> dict[str, Any]:
    host = "127.0.0.1" if config.http_host in ("0.0.0.0", "::") else config.http_host
    root = f"http://{host}:{config.http_port}{config.route_prefix.rstrip('/')}"
    return {
        "url": f"{root}/v1",
        "health_url": f"{root}/health",
        "app_name": config.app_name,
        "deployment": DEPLOYMENT_NAME,
        "model": config.llm.served_model_name,
        "models": [config.llm.served_model_name] + [a.name for a in config.llm.adapters],
        "adapters": {a.name: a.path for a in config.llm.adapters},
        "speculative": config.llm.speculative.model_dump(),
        "api_key_env": config.llm.api_key_env,
        # what a router in front may send at once: more would only come back 429
        "admission_limit": config.llm.admission_limit() * config.llm.num_replicas,
        # What a router in front needs to count prompts exactly as this engine does.
        "tokenizer": config.llm.engine_kwargs.get("tokenizer") or config.llm.model,
        "max_model_len": config.llm.max_model_len,
    }


def start(config: ServeAppConfig, api_key: str | None = None) -> dict[str, Any]:
    """Deploy the app on the connected Ray cluster (``ray.init`` first), wait for it, describe it."""
    from ray import serve

    serve.start(http_options={"host": config.http_host, "port": config.http_port})
    serve.run(build_llm(config.llm, api_key), name=config.app_name, route_prefix=config.route_prefix)
    info = endpoint_info(config)
    wait_healthy(info["health_url"], config.start_timeout_s)
    return info


def wait_healthy(health_url: str, timeout_s: float) -> float:
    """Poll ``/health`` until 200; returns the seconds waited. Raises TimeoutError naming the URL."""
    import httpx

    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout_s:
        try:
            r = httpx.get(health_url, timeout=5)
            if r.status_code == 200:
                return time.monotonic() - t0
            last = f"HTTP {r.status_code}"
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(1.0)
    raise TimeoutError(f"{health_url} not healthy after {timeout_s:.0f}s (last: {last}); "
                       "check `serve status` and the replica logs under /tmp/ray/session_latest/logs/serve")


def stop(app_name: str) -> None:
    """Delete the application (its replicas stop their engines)."""
    from ray import serve

    serve.delete(app_name)
