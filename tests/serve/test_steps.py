"""The serve.deploy step: inputs → app config (unit), endpoint.json (start mocked), smoke request (live app)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.engine.context import StepContext
from flows.engine.registry import get
from serve.config import ServeDeployConfig
from serve.steps import app_config_from_inputs


def _artifact(root: Path, sub: str, marker: str) -> Path:
    (root / sub).mkdir(parents=True)
    (root / sub / marker).write_text("{}")
    return root


def test_kind_is_registered_uncached_and_light():
    kind = get("serve.deploy")
    assert not kind.cacheable and kind.required_inputs == {"model"} and kind.all_inputs == {"model", "draft", "adapter"}
    assert kind.config_model() is ServeDeployConfig


def test_inputs_fill_model_adapter_and_draft(tmp_path):
    inputs = {"model": _artifact(tmp_path / "m", "model", "config.json"),
              "adapter": _artifact(tmp_path / "a", "adapter", "adapter_config.json"),
              "draft": _artifact(tmp_path / "d", "model", "config.json")}
    cfg = ServeDeployConfig(adapter_name="chat")
    app = app_config_from_inputs(cfg, inputs)
    assert app.llm.model == str(tmp_path / "m" / "model")
    assert [(a.name, a.path) for a in app.llm.adapters] == [("chat", str(tmp_path / "a" / "adapter"))]
    assert app.llm.speculative.method == "draft_model" and app.llm.speculative.draft_model == str(tmp_path / "d/model")
    plain = app_config_from_inputs(cfg, {"model": inputs["model"]})
    assert plain.llm.speculative.method == "none" and plain.llm.adapters == []


def test_input_errors_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="right artifact"):
        app_config_from_inputs(ServeDeployConfig(), {"model": tmp_path})
    cfg = ServeDeployConfig.model_validate({"app": {"llm": {"speculative": {"method": "ngram"}}}})
    with pytest.raises(ValueError, match="drop the draft input"):
        app_config_from_inputs(cfg, {"model": _artifact(tmp_path / "m", "model", "config.json"),
                                     "draft": _artifact(tmp_path / "d", "model", "config.json")})
    with pytest.raises(ValueError, match="remove app.llm.model"):
        ServeDeployConfig.model_validate({"app": {"llm": {"model": "/x"}}})


def test_run_deploy_writes_endpoint_json(tmp_path, monkeypatch):
    import serve.app
    import serve.steps

    started = {}

    def fake_start(app_config):
        started["cfg"] = app_config
        return serve.app.endpoint_info(app_config)

    monkeypatch.setattr(serve.app, "start", fake_start)
    monkeypatch.setattr(serve.steps, "smoke_request", lambda info, *a: {"smoke_ttft_ms": 5.0,
                                                                           "smoke_latency_s": 0.1, "smoke_chunks": 3.0})
    ctx = StepContext.for_test(tmp_path / "out", {"model": _artifact(tmp_path / "m", "model", "config.json")})
    metrics = serve.steps.run_deploy(ctx, ServeDeployConfig.model_validate({"app": {"http_port": 18001}}))
    endpoint = json.loads((tmp_path / "out" / "endpoint.json").read_text())
    assert endpoint["url"] == "http://127.0.0.1:18001/v1" and endpoint["models"] == ["llmflow"]
    assert endpoint["api_key_env"] is None and endpoint["smoke"]["smoke_ttft_ms"] == 5.0
    assert next(iter(metrics)) == "startup_s" and started["cfg"].llm.model == str(tmp_path / "m" / "model")


@pytest.mark.integration
def test_smoke_request_against_live_app(llm_app):
    from serve.steps import smoke_request
    from tests.serve.conftest import API_KEY

    out = smoke_request({**llm_app, "model": "tiny"}, "Hello", 6, API_KEY)
    assert out["smoke_chunks"] >= 1 and 0 < out["smoke_ttft_ms"] < 1000 * out["smoke_latency_s"] + 1e-6
