"""The flywheel's steps that touch the running stack (see flows/recipes/flywheel.yaml):

- ``flywheel.attach``: an artifact of the flow that runs the stack (its endpoints, model, eval data), read
  in place, so one turn is its own small flow against a stack that keeps serving;
- ``flywheel.champion``: what the router serves now (serve.router.control) as a model + adapter artifact,
  the starting point of this turn's training;
- ``flywheel.trial``: load the candidate adapter into the running vLLM engine (no restart), shadow it until
  enough pairs are judged, then A/B it until each arm has its votes.

``switch_router`` is the router side of ``flywheel.decide``: promote makes the candidate the champion,
rollback gives the champion all traffic again; both in the routing state file, so no replica restarts.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from components.artifacts import Adapter, Endpoint, Model, WrongArtifactError
from flows.engine.registry import step_kind
from serve.steps.flywheel_config import AttachConfig, ChampionConfig, TrialConfig

TRIAL_FILE = "trial.json"
CHAMPION_FILE = "champion.json"


@step_kind("flywheel.attach", inputs=(), num_cpus=0, cacheable=False,
           description="Use an artifact of the flow that runs the stack (endpoint.json of serve.deploy or "
                       "serve.rag, a model, eval data) in place, as this flow's artifact.")
def run_attach(ctx, config: AttachConfig) -> dict[str, float]:
    src = Path(config.artifact).expanduser().resolve()
    if not config.artifact or not src.is_dir():
        raise ValueError(f"attach.artifact={config.artifact!r} is not a directory: give the artifact folder of the "
                         "stack's step (the `llmflow run` summary of the stack's flow prints each step's artifact)")
    for entry in src.iterdir():
        if not entry.name.startswith("_"):  # the engine's own bookkeeping stays with its artifact
            (ctx.output / entry.name).symlink_to(entry)
    ctx.set_tags({"flywheel.attached": str(src)})
    return {"num_entries": float(len(list(src.iterdir())))}


def _control_path(rag: Endpoint) -> Path:
    if not rag.control_path:
        raise ValueError("the rag endpoint records no control_path (a router deployed before the flywheel's "
                         "routing state existed): redeploy the stack's serve.rag step")
    return Path(rag.control_path)


def adapter_path(llm: Endpoint, state, name: str) -> str | None:
    """Where the weights of the served name ``name`` are: an adapter of endpoint.json or one the flywheel loaded."""
    return llm.adapters.get(name) or state.adapters.get(name)


@step_kind("flywheel.champion", inputs=("endpoint", "rag", "model?"), num_cpus=0, cacheable=False,
           description="What the live router serves now (its routing state) as a model + adapter artifact: the "
                       "starting point of this turn's training.")
def run_champion(ctx, config: ChampionConfig) -> dict[str, float]:
    from serve.router import control

    llm, rag = Endpoint.of(ctx, "endpoint", served="llm"), Endpoint.of(ctx, "rag", served="rag")
    state = control.current(_control_path(rag))
    if state is None:
        raise ValueError(f"{rag.control_path} holds no routing state: is the stack's router running?")
    name = state.model or llm.served_model or llm.model
    adapter = adapter_path(llm, state, name)
    if adapter is None:
        raise ValueError(f"the champion {name!r} is the base model, not an adapter: DPO here trains an adapter from "
                         "the champion's; serve an adapter (serve.deploy with an `adapter` input) first")
    model = Model.of(ctx).dir if "model" in ctx.inputs else Path(llm.tokenizer or "")
    try:
        Model.read(model)
    except WrongArtifactError:
        raise ValueError(f"the served base model's directory {model} has no config.json: give flywheel.champion a "
                         "`model` input (flywheel.attach of the stack's model step)") from None
    (ctx.output / Model.SUBDIR).symlink_to(Model.read(model).dir)
    (ctx.output / Adapter.SUBDIR).symlink_to(Adapter.read(adapter).dir)
    (ctx.output / CHAMPION_FILE).write_text(json.dumps({"name": name, "version": state.model_version,
                                                        "adapter": adapter, "model": str(model)}))
    ctx.set_tags({"flywheel.champion": name, "flywheel.champion_version": state.model_version or ""})
    return {}


def _metrics(rag: Endpoint, key: str | None, timeout_s: float) -> dict:
    import httpx

    r = httpx.get(rag.online_metrics_url, headers={"Authorization": f"Bearer {key}"} if key else {},
                  timeout=timeout_s)
    r.raise_for_status()
    return r.json().get("arms") or {}


def _wait(what: str, done, rag: Endpoint, key: str | None, config: TrialConfig) -> tuple[bool, float, dict]:
    t0 = time.monotonic()
    while True:
        arms = _metrics(rag, key, config.timeout_s)
        if done(arms):
            return True, time.monotonic() - t0, arms
        if time.monotonic() - t0 > config.phase_timeout_s:
            return False, time.monotonic() - t0, arms
        time.sleep(config.poll_s)


@step_kind("flywheel.trial", inputs=("endpoint", "rag", "adapter", "gate?"), num_cpus=0, cacheable=False,
           long_lived=True,
           description="Load the candidate adapter into the running vLLM engine (no restart), shadow it until "
                       "min_judged_pairs are judged, then A/B it until each arm has min_votes_per_arm thumbs.")
def run_trial(ctx, config: TrialConfig) -> dict[str, float]:
    from ray import serve

    from serve.router import control
    from serve.steps.auth import endpoint_api_key

    llm, rag = Endpoint.of(ctx, "endpoint", served="llm"), Endpoint.of(ctx, "rag", served="rag")
    path = _control_path(rag)
    if "gate" in ctx.inputs:
        gate = json.loads((ctx.input("gate") / "gate.json").read_text())
        if gate.get("gated", True) and not gate.get("promoted"):
            trial = {"skipped": f"the offline gate did not pass the candidate: {gate.get('reason')}"}
            (ctx.output / TRIAL_FILE).write_text(json.dumps(trial))
            ctx.add_link("flywheel", trial["skipped"])
            return {"deployed": 0.0}
    adapter = str(Adapter.of(ctx).dir)
    name = f"{config.candidate_prefix}-{hashlib.sha256(adapter.encode()).hexdigest()[:8]}"
    handle = serve.get_deployment_handle(llm.deployment, app_name=llm.app_name)
    t0 = time.monotonic()
    handle.load_adapter.remote(name, adapter).result(timeout_s=config.timeout_s)
    load_s = time.monotonic() - t0
    state = control.current(path)
    adapters = {**state.adapters, name: adapter}
    key = endpoint_api_key(rag)
    trial = {"candidate_model": name, "adapter": adapter, "load_s": load_s, "phases": {}}
    if config.min_judged_pairs:
        control.switch(path, f"flywheel: shadow {name}", adapters=adapters, arms={
            "mode": "shadow", "candidate_share": config.shadow_share, "candidate_model": name})
        ok, waited, arms = _wait("shadow", lambda a: a.get("shadow", {}).get("shadow_judged", 0)
                                 >= config.min_judged_pairs, rag, key, config)
        trial["phases"]["shadow"] = {"complete": ok, "waited_s": waited, "arms": arms}
    control.switch(path, f"flywheel: A/B {name}", adapters=adapters, arms={
        "mode": "ab", "candidate_share": config.ab_share, "candidate_model": name})
    ok, waited, arms = _wait("ab", lambda a: all(a.get(arm, {}).get("votes", 0) >= config.min_votes_per_arm
                                                for arm in ("primary", "candidate")), rag, key, config)
    trial["phases"]["ab"] = {"complete": ok, "waited_s": waited, "arms": arms}
    (ctx.output / TRIAL_FILE).write_text(json.dumps(trial, indent=2))
    ctx.log_artifact(ctx.output / TRIAL_FILE)
    ctx.set_tags({"flywheel.candidate_model": name})
    ctx.log_metrics({"adapter_load_s": load_s, **{f"{p}_waited_s": v["waited_s"] for p, v in trial["phases"].items()}})
    return {"deployed": 1.0, "adapter_load_s": load_s}


def switch_router(rag: Endpoint, trial: dict, action: str, version: str | None, reason: str) -> dict:
    """flywheel.decide's router side: promote puts the candidate in the champion's place, rollback keeps the
    champion; either way the candidate arm ends. ``python -m serve.router.control rollback`` undoes it."""
    from serve.router import control

    path = _control_path(rag)
    if action == "promote":
        state = control.switch(path, f"flywheel promote: {reason}", model=trial["candidate_model"],
                               model_version=version, arms={"mode": "off"})
    else:
        state = control.switch(path, f"flywheel rollback: {reason}", arms={"mode": "off"})
    return {"model": state.model, "model_version": state.model_version}
