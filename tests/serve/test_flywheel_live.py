"""flywheel.attach / flywheel.champion / flywheel.trial (its no-traffic path) and the router switch of
flywheel.decide, on artifacts and a routing state file (the live path: tests/serve/test_flywheel_turn.py)."""
from __future__ import annotations

import json

import pytest

from components.artifacts import Adapter, Endpoint, Model
from flows.engine.context import StepContext
from serve.router import control
from serve.router.control import RoutingState
from serve.steps.flywheel_config import AttachConfig, ChampionConfig, TrialConfig
from serve.steps.flywheel_live import run_attach, run_champion, run_trial, switch_router


@pytest.fixture
def stack(tmp_path):
    model = tmp_path / "base"
    model.mkdir()
    (model / "config.json").write_text("{}")
    adapter = tmp_path / "sft_adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    Endpoint(served="llm", url="http://h/v1", health_url="h", app_name="llm", deployment="LLMDeployment",
             model="base", models=["base", "sft"], adapters={"sft": str(adapter)}, tokenizer=str(model)
             ).write(tmp_path / "llm")
    path = tmp_path / "router_control.json"
    Endpoint(served="rag", url="http://h/rag/v1", health_url="h", app_name="rag", llm_url="http://h/v1",
             online_metrics_url="http://h/rag/online/metrics", control_path=str(path)).write(tmp_path / "rag")
    control.deploy(path, RoutingState(model="sft", model_version="llmflow-chat v1"))
    return tmp_path


def ctx_for(tmp_path, name, **inputs):
    ctx = StepContext.for_test(tmp_path / name, inputs, name=name)
    ctx.output.mkdir(parents=True, exist_ok=True)
    return ctx


def test_attach_reads_the_stacks_artifact_in_place(stack):
    ctx = ctx_for(stack, "att")
    run_attach(ctx, AttachConfig(artifact=str(stack / "llm")))
    assert Endpoint.read(ctx.output, served="llm").adapters == {"sft": str(stack / "sft_adapter")}
    with pytest.raises(ValueError, match="attach.artifact='' is not a directory"):
        run_attach(ctx_for(stack, "none"), AttachConfig())


def test_champion_is_what_the_router_serves_now(stack):
    ctx = ctx_for(stack, "champ", endpoint=stack / "llm", rag=stack / "rag")
    run_champion(ctx, ChampionConfig())
    assert Adapter.read(ctx.output).dir.resolve() == (stack / "sft_adapter").resolve()
    assert Model.read(ctx.output).dir.resolve() == (stack / "base").resolve()
    # After a promotion the champion is an adapter the flywheel loaded: found through the routing state.
    cand = stack / "cand"
    cand.mkdir()
    (cand / "adapter_config.json").write_text("{}")
    control.switch(stack / "router_control.json", "promote", model="flywheel-1", adapters={"flywheel-1": str(cand)})
    ctx = ctx_for(stack, "champ2", endpoint=stack / "llm", rag=stack / "rag")
    run_champion(ctx, ChampionConfig())
    assert json.loads((ctx.output / "champion.json").read_text())["name"] == "flywheel-1"
    control.switch(stack / "router_control.json", "base", model="base")
    with pytest.raises(ValueError, match="is the base model, not an adapter"):
        run_champion(ctx_for(stack, "champ3", endpoint=stack / "llm", rag=stack / "rag"), ChampionConfig())


def test_a_candidate_the_offline_gate_stopped_gets_no_traffic(stack):
    gate = stack / "gate"
    gate.mkdir()
    (gate / "gate.json").write_text(json.dumps({"gated": True, "promoted": False, "reason": "f1 0.1 < 0.2"}))
    ctx = ctx_for(stack, "trial", endpoint=stack / "llm", rag=stack / "rag", adapter=stack / "sft_adapter", gate=gate)
    assert run_trial(ctx, TrialConfig()) == {"deployed": 0.0}
    assert "f1 0.1 < 0.2" in json.loads((ctx.output / "trial.json").read_text())["skipped"]
    assert control.current(stack / "router_control.json").arms.mode == "off"


def test_promote_and_rollback_switch_the_router_and_end_the_arm(stack):
    rag = Endpoint.read(stack / "rag")
    path = stack / "router_control.json"
    control.switch(path, "ab", arms={"mode": "ab", "candidate_model": "flywheel-1"})
    assert switch_router(rag, {"candidate_model": "flywheel-1"}, "rollback", None, "lost") == \
        {"model": "sft", "model_version": "llmflow-chat v1"}
    control.switch(path, "ab", arms={"mode": "ab", "candidate_model": "flywheel-1"})
    assert switch_router(rag, {"candidate_model": "flywheel-1"}, "promote", "llmflow-chat v2", "won") == \
        {"model": "flywheel-1", "model_version": "llmflow-chat v2"}
    assert control.current(path).arms.mode == "off" and control.rollback(path).arms.mode == "ab"
