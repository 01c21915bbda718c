"""Flow steps that finish the serving stack: ``serve.rag`` puts the RAG router (with the online
evaluation loop) in front of the LLM app that ``serve.deploy`` started, and ``serve.smoke`` sends
the queries a user would — plain, chat streaming, an adapter by name, RAG with citations (also for
questions whose sources overflow the context), an off-topic question and feedback — through the
official ``openai`` client, failing the step if any answer is wrong in shape.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from components.artifacts import Endpoint
from flows.engine.registry import step_kind
from serve.steps.auth import endpoint_api_key
from serve.steps.deploy import add_endpoint_links
from serve.steps.stack_config import RagServeConfig, SmokeConfig


def _host_url(url: str) -> str:
    """scheme://host:port of a Serve URL: the router's route prefix is absolute, not under the LLM app's."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _budget_from(llm: Endpoint, router) -> dict:
    """The served model's tokenizer and context length (from its endpoint.json) for the router's
    prompt budget, unless the recipe set them itself (null for both turns budgeting off)."""
    if {"tokenizer", "max_model_len"} & router.model_fields_set:
        return {}
    missing = [k for k in ("tokenizer", "max_model_len") if not getattr(llm, k)]
    if missing:
        raise ValueError(f"the LLM's endpoint.json lacks {missing}, so the router cannot fit prompts into the "
                         "context: rerun serve.deploy, or set router.tokenizer and router.max_model_len in this "
                         "step's config")
    return {"tokenizer": llm.tokenizer, "max_model_len": llm.max_model_len}


@step_kind("serve.rag", inputs=("endpoint", "index"), num_cpus=0, cacheable=False, long_lived=True,
           description="Start the RAG router (hybrid search, citations, online evaluation) at /rag in front "
                       "of the LLM app that serve.deploy started; writes endpoint.json.")
def run_rag(ctx, config: RagServeConfig) -> dict[str, float]:
    from ray import serve

    from serve.llm.app import wait_healthy
    from serve.router.app import build_router

    llm = Endpoint.of(ctx, "endpoint", served="llm")
    # The router asks for the model serve.deploy serves by default (the adapter the gate let through)
    # unless the recipe named one.
    served = {"model": llm.served_model} if "model" not in config.router.model_fields_set and \
        llm.served_model and llm.served_model != llm.model else {}
    router = config.router.model_copy(deep=True, update={"index_dir": ctx.input_uri("index"),
                                                         **_budget_from(llm, config.router), **served})
    if router.online_eval is not None:
        oe, updates = router.online_eval, {}
        if oe.tracking_uri is None and ctx.tracking_uri:
            updates["tracking_uri"] = ctx.tracking_uri  # the replica's cwd is not the flow's workdir
        if not Path(oe.feedback_path).is_absolute():
            updates["feedback_path"] = str(Path(ctx.state_dir or ctx.output) / "online" / oe.feedback_path)
            Path(updates["feedback_path"]).parent.mkdir(parents=True, exist_ok=True)
        router = router.model_copy(update={"online_eval": oe.model_copy(update=updates)})
    if router.control_path is None:  # the flywheel switches champion and candidate through it
        router = router.model_copy(update={"control_path": str(Path(ctx.state_dir or ctx.output) / "online"
                                                               / "router_control.json")})
    from serve.router.control import RoutingState, deploy

    deploy(router.control_path, RoutingState(
        model=router.model, model_version=router.model_version, reason="serve.rag deploy",
        arms=router.online_eval.experiment_arms if router.online_eval else RoutingState().arms))
    handle = serve.get_deployment_handle(llm.deployment, app_name=llm.app_name)
    t0 = time.perf_counter()
    # One key for the whole stack: the router takes the LLM app's (its variable, else the flow's key file).
    app = build_router(router, handle, api_key_env=llm.api_key_env, api_key=endpoint_api_key(llm),
                       llm_admission_limit=llm.admission_limit)
    serve.run(app, name=config.app_name, route_prefix=config.route_prefix, blocking=False)
    root = _host_url(llm.url) + config.route_prefix.rstrip("/")
    wait_healthy(f"{root}/health", config.start_timeout_s)
    startup_s = time.perf_counter() - t0
    endpoint = Endpoint(served="rag", url=f"{root}/v1", health_url=f"{root}/health", app_name=config.app_name,
                        feedback_url=f"{root}/feedback" if router.online_eval else None,
                        online_metrics_url=f"{root}/online/metrics" if router.online_eval else None,
                        llm_url=llm.url, startup_s=startup_s, api_key_env=llm.api_key_env,
                        api_key_file=llm.api_key_file,
                        feedback_path=router.online_eval.feedback_path if router.online_eval else None,
                        control_path=router.control_path)
    endpoint.write(ctx.output)
    add_endpoint_links(ctx, endpoint)
    ctx.set_tags({"serve.rag_url": endpoint.url, "serve.online_eval": bool(router.online_eval)})
    return {"router_startup_s": startup_s}


@step_kind("serve.smoke", inputs=("endpoint", "rag"), num_cpus=0, cacheable=False, long_lived=True,
           description="Query the live stack with the openai client (plain, streaming, adapter, RAG with "
                       "citations, off-topic, feedback); fails if any answer has the wrong shape.")
def run_smoke(ctx, config: SmokeConfig) -> dict[str, float]:
    import httpx
    from openai import OpenAI

    llm = Endpoint.of(ctx, "endpoint", served="llm")
    rag = Endpoint.of(ctx, "rag", served="rag")
    key = endpoint_api_key(llm)
    client = OpenAI(base_url=llm.url, api_key=key or "none", timeout=config.timeout_s, max_retries=1)
    rag_client = OpenAI(base_url=rag.url, api_key=key or "none", timeout=config.timeout_s, max_retries=1)
    checks: dict[str, dict[str, Any]] = {}

    def check(name: str, fn) -> None:
        t0 = time.perf_counter()
        try:
            detail = fn()
            checks[name] = {"ok": True, "latency_s": time.perf_counter() - t0, **detail}
        except Exception as e:  # noqa: BLE001 - every check is reported, then the step fails below
            checks[name] = {"ok": False, "latency_s": time.perf_counter() - t0, "error": f"{type(e).__name__}: {e}"}

    def plain():
        r = client.completions.create(model=llm.model, prompt=config.plain_prompt, max_tokens=config.max_tokens,
                                      temperature=0)
        assert r.usage.completion_tokens > 0, "no tokens generated"
        return {"text": r.choices[0].text}

    def chat_stream():
        pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model=llm.model, messages=[{"role": "user", "content": config.rag_question}],
            max_tokens=config.max_tokens, stream=True) if c.choices]
        assert len(pieces) > 1, f"expected several streamed chunks, got {len(pieces)}"
        return {"chunks": len(pieces), "text": "".join(pieces)}

    def adapter():
        names = [m for m in llm.models if m != llm.model]
        if not names:
            return {"skipped": "no adapter served"}
        r = client.completions.create(model=names[0], prompt=config.plain_prompt, max_tokens=config.max_tokens)
        assert r.model == names[0], r.model
        return {"adapter": names[0], "text": r.choices[0].text}

    def rag_answer():
        r = rag_client.chat.completions.create(model="llmflow-rag", max_tokens=config.max_tokens,
                                               messages=[{"role": "user", "content": config.rag_question}])
        info = r.model_extra["rag"]
        assert info["route"] == "rag", f"route {info['route']} (best sources {info['retrieved'][:2]})"
        assert info["sources"], "a grounded answer must cite sources"
        checks_feedback["request_id"] = r.id
        return {"route": info["route"], "sources": [(s["n"], s["title"], round(s["score"], 4)) for s in info["sources"]],
                "text": r.choices[0].message.content}

    def rag_overflow():
        # No max_tokens: the router's default (128) reserves the most room, leaving the least for sources.
        answers = []
        for question in config.overflow_questions:
            r = rag_client.chat.completions.create(model="llmflow-rag",
                                                   messages=[{"role": "user", "content": question}])
            info = r.model_extra["rag"]
            assert info["route"] == "rag" and info["sources"], \
                f"{question!r}: route {info['route']} with {len(info['sources'])} cited sources"
            budget = info.get("budget") or {}
            answers.append({"question": question, "sources": len(info["sources"]),
                            "dropped": len(budget.get("dropped", [])), "trimmed": len(budget.get("trimmed", [])),
                            "prompt_tokens": r.usage.prompt_tokens, "text": r.choices[0].message.content})
        return {"answers": answers}

    def off_topic():
        r = rag_client.chat.completions.create(model="llmflow-rag", max_tokens=config.max_tokens,
                                               messages=[{"role": "user", "content": config.off_topic_question}])
        route = r.model_extra["rag"]["route"]
        assert route != "rag", "an off-topic question was answered from sources"
        return {"route": route, "text": r.choices[0].message.content}

    def rag_stream():
        first_rag, pieces = None, []
        for c in rag_client.chat.completions.create(model="llmflow-rag", max_tokens=config.max_tokens, stream=True,
                                                    messages=[{"role": "user", "content": config.rag_question}]):
            first_rag = first_rag or (c.model_extra or {}).get("rag")
            pieces += [c.choices[0].delta.content or ""] if c.choices else []
        assert first_rag and first_rag["sources"], "the stream must carry the cited sources"
        return {"chunks": len(pieces), "sources": len(first_rag["sources"])}

    def feedback():
        if not rag.feedback_url:
            return {"skipped": "online evaluation is off"}
        r = httpx.post(rag.feedback_url, json={"request_id": checks_feedback["request_id"], "thumb": "up",
                                                  "comment": "smoke test"}, timeout=config.timeout_s,
                       headers={"Authorization": f"Bearer {key}"} if key else {})
        r.raise_for_status()
        return {"trace_id": r.json()["trace_id"]}

    checks_feedback: dict[str, str] = {}
    for name, fn in [("plain", plain), ("chat_stream", chat_stream), ("adapter", adapter),
                     ("rag", rag_answer), ("rag_overflow", rag_overflow), ("off_topic", off_topic),
                     ("rag_stream", rag_stream), ("feedback", feedback)]:
        check(name, fn)
    (Path(ctx.output) / "smoke.json").write_text(json.dumps(checks, indent=2, default=str))
    ctx.log_artifact(Path(ctx.output) / "smoke.json")
    failed = {k: v["error"] for k, v in checks.items() if not v["ok"]}
    if failed:
        raise RuntimeError(f"smoke queries failed: {failed}")
    return {"smoke_checks_ok": float(len(checks)),
            "rag_latency_s": checks["rag"]["latency_s"], "plain_latency_s": checks["plain"]["latency_s"]}
