"""The serve.deploy step: inputs → app config (unit), endpoint.json (start mocked), smoke request (live app)."""
from __future__ import annotations

from pathlib import Path

import pytest

from components.artifacts import Endpoint, WrongArtifactError
from flows.engine.context import StepContext
from flows.engine.registry import get
from serve.llm.config import ServeDeployConfig
from serve.steps.deploy import app_config_from_inputs


def _artifact(root: Path, sub: str, marker: str) -> Path:
    (root / sub).mkdir(parents=True, exist_ok=True)
    (root / sub / marker).write_text("{}")
    return root


def test_kind_is_registered_uncached_and_light():
    kind = get("serve.deploy")
    assert not kind.cacheable and kind.required_inputs == {"model"} and kind.all_inputs == {"model", "draft", "adapter", "gate"}
    assert kind.config is ServeDeployConfig


def test_inputs_fill_model_adapter_and_draft(tmp_path, tiny_model_dir):
    import shutil

    # Real (tiny) model directories: a draft is checked against its target's tokenizer before serving.
    inputs = {"model": tmp_path / "m", "adapter": _artifact(tmp_path / "a", "adapter", "adapter_config.json"),
              "draft": tmp_path / "d"}
    for name in ("model", "draft"):
        shutil.copytree(tiny_model_dir, inputs[name] / "model")
    cfg = ServeDeployConfig(adapter_name="chat")
    app = app_config_from_inputs(cfg, inputs)
    assert app.llm.model == str(tmp_path / "m" / "model")
    assert [(a.name, a.path) for a in app.llm.adapters] == [("chat", str(tmp_path / "a" / "adapter"))]
    assert app.llm.speculative.method == "draft_model" and app.llm.speculative.draft_model == str(tmp_path / "d/model")
    plain = app_config_from_inputs(cfg, {"model": inputs["model"]})
    assert plain.llm.speculative.method == "none" and plain.llm.adapters == []


def test_input_errors_say_what_to_do(tmp_path):
    docs = tmp_path / "docs_artifact"
    (docs / "docs").mkdir(parents=True)
    (docs / "docs" / "part-00000.parquet").write_bytes(b"")
    with pytest.raises(WrongArtifactError, match=r"input 'model' of step 'serve' .* is not a model artifact "
                                                 r"\(no model/config.json\); it looks like a docs artifact.*"
                                                 r"comes from train.pretrain, models.import or distill.draft"):
        app_config_from_inputs(ServeDeployConfig(), {"model": docs}, "serve")
    model = _artifact(tmp_path / "m", "model", "config.json")
    with pytest.raises(WrongArtifactError, match=r"input 'adapter' .* not an adapter artifact.*it looks like a model "
                                                 r"artifact.*comes from sft.lora, rl.grpo or rl.dpo"):
        app_config_from_inputs(ServeDeployConfig(), {"model": model, "adapter": model})
    cfg = ServeDeployConfig.model_validate({"app": {"llm": {"speculative": {"method": "ngram"}}}})
    with pytest.raises(ValueError, match="drop the draft input"):
        app_config_from_inputs(cfg, {"model": _artifact(tmp_path / "m", "model", "config.json"),
                                     "draft": _artifact(tmp_path / "d", "model", "config.json")})
    with pytest.raises(ValueError, match="remove app.llm.model"):
        ServeDeployConfig.model_validate({"app": {"llm": {"model": "/x"}}})


def _run_deploy(tmp_path, monkeypatch, app: dict) -> tuple[Endpoint, dict]:
    """run_deploy with Serve's start and the smoke request faked: (endpoint.json, what start got)."""
    import serve.llm.app
    import serve.steps.deploy

    started = {}

    def fake_start(app_config, api_key=None):
        started.update(cfg=app_config, api_key=api_key)
        return serve.llm.app.endpoint_info(app_config)

    monkeypatch.setattr(serve.llm.app, "start", fake_start)
    monkeypatch.setattr(serve.steps.deploy, "smoke_request", lambda info, *a: {"smoke_ttft_ms": 5.0,
                                                                           "smoke_latency_s": 0.1, "smoke_chunks": 3.0})
    ctx = StepContext.for_test(tmp_path / "out", {"model": _artifact(tmp_path / "m", "model", "config.json")})
    ctx.state_dir = tmp_path / "wd" / ".llmflow" / "state"
    metrics = serve.steps.deploy.run_deploy(ctx, ServeDeployConfig.model_validate({"app": {"http_port": 18001, **app}}))
    assert next(iter(metrics)) == "startup_s" and started["cfg"].llm.model == str(tmp_path / "m" / "model")
    return Endpoint.read(tmp_path / "out", served="llm"), started


def test_run_deploy_writes_endpoint_json_with_a_flow_key_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("LLMFLOW_API_KEY", raising=False)
    endpoint, started = _run_deploy(tmp_path, monkeypatch, {})
    assert endpoint.url == "http://127.0.0.1:18001/v1" and endpoint.models == ["llmflow"]
    assert endpoint.smoke["smoke_ttft_ms"] == 5.0 and endpoint.admission_limit == 32
    key_file = tmp_path / "wd" / ".llmflow" / "secrets" / "api_key"
    assert endpoint.api_key_env == "LLMFLOW_API_KEY" and endpoint.api_key_file == str(key_file)
    key = key_file.read_text().strip()
    assert started["api_key"] == key and len(key) >= 32 and (key_file.stat().st_mode & 0o777) == 0o600
    assert key not in (tmp_path / "out" / "endpoint.json").read_text()  # the path, never the key
    from serve.steps.auth import endpoint_api_key

    assert endpoint_api_key(endpoint) == key
    (tmp_path / "out" / "endpoint.json").unlink()
    _, again = _run_deploy(tmp_path, monkeypatch, {})  # a later run of the flow keeps the same key
    assert again["api_key"] == key


def test_run_deploy_prefers_the_variable_and_null_turns_auth_off(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMFLOW_API_KEY", "from-env")
    endpoint, started = _run_deploy(tmp_path, monkeypatch, {})
    assert started["api_key"] == "from-env" and endpoint.api_key_file is None
    assert not (tmp_path / "wd" / ".llmflow" / "secrets").exists()
    (tmp_path / "out" / "endpoint.json").unlink()
    endpoint, started = _run_deploy(tmp_path, monkeypatch, {"llm": {"api_key_env": None}})
    assert started["api_key"] is None and endpoint.api_key_env is None and endpoint.api_key_file is None


@pytest.mark.integration
def test_smoke_request_against_live_app(llm_app):
    from serve.steps.deploy import smoke_request
    from tests.serve.llm_app_settings import API_KEY

    out = smoke_request({**llm_app, "model": "tiny"}, "Hello", 6, API_KEY)
    assert out["smoke_chunks"] >= 1 and 0 < out["smoke_ttft_ms"] < 1000 * out["smoke_latency_s"] + 1e-6
