"""The ``serve.deploy`` step: deploy the serving app from flow artifacts, smoke-test it, write endpoint.json."""
from __future__ import annotations

import json
import time
from pathlib import Path

from components.artifacts import Adapter, Endpoint, Model, WrongArtifactError
from flows.engine.registry import step_kind
from serve.llm.config import (
    AdapterConfig,
    LLMServeConfig,
    ServeAppConfig,
    ServeDeployConfig,
    SpeculativeConfig,
)


def add_endpoint_links(ctx, endpoint: Endpoint) -> None:
    """The run summary's lines for a live endpoint: its URL (and feedback URL), where its API key is."""
    ctx.add_link("serving", f"serving at {endpoint.url} (OpenAI-compatible)"
                 + (f"; feedback: POST {endpoint.feedback_url}" if endpoint.feedback_url else ""))
    if endpoint.api_key_file:
        ctx.add_link("api_key", f"API key in {endpoint.api_key_file} "
                     f"(export {endpoint.api_key_env or 'LLMFLOW_API_KEY'}=$(cat {endpoint.api_key_file}))")


def app_config_from_inputs(config: ServeDeployConfig, inputs: dict[str, Path], step: str = "serve.deploy") -> ServeAppConfig:
    """The concrete app config: the deploy config with model/draft/adapter paths filled from inputs."""
    llm = config.app.llm.model_copy(deep=True)
    llm.model = str(Model.read(inputs["model"], input="model", step=step).dir)
    if "adapter" in inputs:
        llm.adapters = [*llm.adapters, AdapterConfig(
            name=config.adapter_name, path=str(Adapter.read(inputs["adapter"], input="adapter", step=step).dir))]
    if "draft" in inputs:
        if llm.speculative.method == "ngram":
            raise ValueError("a `draft` input was given but app.llm.speculative.method is ngram: "
                             "drop the draft input or set method: none (the draft turns on draft_model)")
        llm.speculative = SpeculativeConfig(method="draft_model",
                                            draft_model=str(Model.read(inputs["draft"], input="draft",
                                                                       step=step).dir),
                                            num_speculative_tokens=llm.speculative.num_speculative_tokens)
    if llm.speculative.method == "draft_model":
        from components.models.compat import check_draft

        check_draft(llm.model, llm.speculative.draft_model)  # before any replica starts: vLLM would fail late
    return config.app.model_copy(update={"llm": LLMServeConfig.model_validate(llm.model_dump())})


def smoke_request(info: dict, prompt: str, max_tokens: int, api_key: str | None) -> dict[str, float]:
    """One streamed completion: time to first token and total latency, proving the endpoint answers."""
    from openai import OpenAI

    client = OpenAI(base_url=info["url"], api_key=api_key or "none", max_retries=2, timeout=120)
    t0 = time.perf_counter()
    ttft, n = None, 0
    for chunk in client.completions.create(model=info["model"], prompt=prompt, max_tokens=max_tokens, stream=True):
        if chunk.choices and chunk.choices[0].text:
            ttft = ttft if ttft is not None else time.perf_counter() - t0
            n += 1
    return {"smoke_ttft_ms": 1000 * (ttft if ttft is not None else float("nan")),
            "smoke_latency_s": time.perf_counter() - t0, "smoke_chunks": float(n)}


def _is_adapter(artifact: Path) -> bool:
    try:
        Adapter.read(artifact)
    except WrongArtifactError:
        return False
    return True


def gate_decision(gate_artifact: Path | None) -> dict:
    """Which adapter the gate lets this deploy serve, read from an eval.offline artifact's gate.json:

    - ``candidate``: the gate promoted the candidate (or ran ungated: ``gate.enabled: false``);
    - ``champion``: the candidate lost; the registry's champion (an adapter artifact) is served;
    - ``base``: the candidate lost and there is no champion adapter: the base model alone.
    No gate input: the adapter input is served, as before the gate existed.
    """
    if gate_artifact is None:
        return {"serve": "candidate", "reason": "no gate input: the adapter input is served ungated"}
    path = Path(gate_artifact) / "gate.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: serve.deploy's `gate` input must be an eval.offline step")
    gate = json.loads(path.read_text())
    if gate.get("promoted") or not gate.get("gated", True):
        version = (gate.get("candidate") or {}).get("version")
        return {"serve": "candidate", "version": version, "reason": gate["reason"]}
    champion = gate.get("champion")
    source = Path(champion["source"]) if champion else None
    if source is not None and _is_adapter(source):
        return {"serve": "champion", "version": champion["version"], "source": str(source),
                "reason": f"candidate not promoted ({gate['reason']}); serving champion v{champion['version']}"}
    why = ("the champion's adapter " + str(source) + " is gone") if source is not None else "there is no champion"
    return {"serve": "base", "reason": f"candidate not promoted ({gate['reason']}) and {why}: serving the base model"}


@step_kind("serve.deploy", inputs=("model", "draft?", "adapter?", "gate?"),
           description="Start the OpenAI-compatible Ray Serve + vLLM app from the run's model (+ draft, LoRA) "
                       "and write endpoint.json; with a `gate` input (eval.offline) the adapter is served only "
                       "if the gate promoted it, else the champion's adapter or the base model",
           num_cpus=0,  # the step only drives Serve; the replica it starts needs the CPU
           cacheable=False, long_lived=True)
def run_deploy(ctx, config: ServeDeployConfig) -> dict[str, float]:
    from serve.llm import app as serve_app
    from serve.steps.auth import flow_api_key

    inputs = {k: Path(v) for k, v in ctx.inputs.items()}
    decision = gate_decision(inputs.pop("gate", None))
    if decision["serve"] == "champion":
        inputs["adapter"] = Path(decision["source"])
    elif decision["serve"] == "base":
        inputs.pop("adapter", None)
    app_config = app_config_from_inputs(config, inputs, ctx.name)
    # The name a client (and the RAG router) asks for by default: the adapter the gate let through.
    served_model = config.adapter_name if "adapter" in inputs else app_config.llm.served_model_name
    # Auth is on by default: with the key's variable unset, the flow keeps its own key in a file
    # (created once, reused by later runs), so `make run` needs no setup and leaves no open model.
    api_key, key_file = flow_api_key(app_config.llm.api_key_env, ctx.state_dir)
    t0 = time.perf_counter()
    info = serve_app.start(app_config, api_key)
    startup_s = time.perf_counter() - t0
    smoke = smoke_request(info, config.smoke_prompt, config.smoke_max_tokens, api_key)
    metrics = {"startup_s": startup_s, **smoke}
    # the key file's path, never the key: endpoint.json is an artifact anyone with the store can read
    endpoint = Endpoint(served="llm", **info, api_key_file=str(key_file) if key_file else None,
                        startup_s=startup_s, smoke=smoke, served_model=served_model, gate=decision)
    path = endpoint.write(ctx.output)
    add_endpoint_links(ctx, endpoint)
    ctx.add_link("gate", f"serving {decision['serve']} as {served_model!r}: {decision['reason']}")
    metrics["serving_candidate"] = float(decision["serve"] == "candidate")
    ctx.log_metrics(metrics)
    ctx.log_artifact(path)
    ctx.set_tags({"serve.url": info["url"], "serve.models": ",".join(info["models"]),
                  "serve.speculative": app_config.llm.speculative.method, "serve.served_model": served_model,
                  "serve.gate": decision["serve"], "serve.gate_reason": decision["reason"][:500]})
    return metrics
