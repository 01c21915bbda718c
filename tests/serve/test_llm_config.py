"""Unit: serving configs, the yaml files users run, the ASGI guard, the handle error type (fast, no engine)."""
from __future__ import annotations

import asyncio
import importlib
import json
import pickle
from pathlib import Path

import pytest
import yaml

from serve.errors import GuardMiddleware, LLMRequestError
from serve.llm.config import (
    AdapterConfig,
    LLMServeConfig,
    ServeAppConfig,
    SpeculativeConfig,
)

LLM_DIR = Path(__file__).resolve().parents[2] / "serve" / "llm"


def test_speculative_config_validates_and_maps_to_vllm():
    assert SpeculativeConfig().to_vllm() is None
    assert SpeculativeConfig(method="ngram", num_speculative_tokens=3).to_vllm()["num_speculative_tokens"] == 3
    spec = SpeculativeConfig(method="draft_model", draft_model="/d").to_vllm()
    assert spec == {"method": "draft_model", "model": "/d", "num_speculative_tokens": 4}
    with pytest.raises(ValueError, match="draft_model"):
        SpeculativeConfig(method="draft_model")
    with pytest.raises(ValueError, match="method: draft_model"):
        SpeculativeConfig(method="ngram", draft_model="/d")
    with pytest.raises(ValueError):
        SpeculativeConfig(method="medusa")


def test_vllm_cli_args_carry_model_adapters_spec_and_extras():
    cfg = LLMServeConfig(model="/m", served_model_name="base", adapters=[AdapterConfig(name="sft", path="/a")],
                         speculative=SpeculativeConfig(method="ngram"), engine_kwargs={"block_size": 32,
                                                                                      "enable_prefix_caching": True})
    args = cfg.vllm_cli_args()
    assert args[0] == "/m" and args[args.index("--served-model-name") + 1] == "base"
    assert "--enable-lora" in args and "sft=/a" in args and "--enforce-eager" in args
    assert '"method": "ngram"' in args[args.index("--speculative-config") + 1]
    assert args[args.index("--block-size") + 1] == "32" and "--enable-prefix-caching" in args
    # several tokens per streamed chunk: each chunk is a message through Serve's proxy and the replica
    assert args[args.index("--stream-interval") + 1] == "4"
    assert LLMServeConfig(model="/m", stream_interval=1).vllm_cli_args().count("--stream-interval") == 1
    # a flag a typed field writes cannot come twice through engine_kwargs
    with pytest.raises(ValueError, match=r"engine_kwargs \['stream_interval'\].*llm.stream_interval"):
        LLMServeConfig(model="/m", engine_kwargs={"stream_interval": 8})
    with pytest.raises(ValueError, match="llm.max_model_len"):
        LLMServeConfig(model="/m", engine_kwargs={"max-model-len": 64})


def test_config_errors_name_the_fix(monkeypatch):
    with pytest.raises(ValueError, match="unique"):
        LLMServeConfig(model="/m", served_model_name="x", adapters=[AdapterConfig(name="x", path="/a")])
    with pytest.raises(ValueError, match="llm.model is not set"):
        LLMServeConfig().vllm_cli_args()
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ValueError, match="export NO_SUCH_KEY_VAR"):
        LLMServeConfig(model="/m", api_key_env="NO_SUCH_KEY_VAR").api_key()
    with pytest.raises(ValueError):
        LLMServeConfig(model="/m", max_ongoing_request=3)  # typo: extra="forbid"


@pytest.mark.parametrize("name", ["serve_config.yaml", "serve_config.cluster.yaml"])
def test_shipped_serve_configs_validate(name):
    from ray.serve.schema import ServeDeploySchema

    from serve.llm.app import build_app

    raw = yaml.safe_load((LLM_DIR / name).read_text())
    ServeDeploySchema.model_validate(raw)
    [app] = raw["applications"]
    module, _, attr = app["import_path"].partition(":")
    assert getattr(importlib.import_module(module), attr) is build_app  # the path `serve run` imports
    cfg = ServeAppConfig.model_validate(app["args"])
    assert cfg.llm.model


# -- the ASGI guard in front of vLLM's app ---------------------------------------------
async def _call(mw, path: str, headers: dict[str, str] | None = None):
    sent = []

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "method": "POST", "path": path,
             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}
    await mw(scope, None, send)
    return sent[0]["status"], sent


def test_guard_checks_bearer_key_but_leaves_health_open():
    async def ok_app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})

    mw = GuardMiddleware(ok_app, api_key="k")
    assert asyncio.run(_call(mw, "/v1/models"))[0] == 401
    assert asyncio.run(_call(mw, "/v1/models", {"Authorization": "Bearer nope"}))[0] == 401
    assert asyncio.run(_call(mw, "/v1/models", {"Authorization": "Basic k"}))[0] == 401
    assert asyncio.run(_call(mw, "/v1/models", {"Authorization": "Bearer k"}))[0] == 200
    assert asyncio.run(_call(mw, "/health"))[0] == 200
    # every other route too: vLLM's /tokenize and /metrics, the router's /feedback and /online/metrics
    for path in ("/tokenize", "/metrics", "/feedback", "/online/metrics", "/", "/docs"):
        assert asyncio.run(_call(mw, path))[0] == 401, path
        assert asyncio.run(_call(mw, path, {"Authorization": "Bearer k"}))[0] == 200, path
    _, sent = asyncio.run(_call(mw, "/v1/completions"))
    assert json.loads(sent[1]["body"]) == {"error": {
        "message": "Missing or invalid API key: send 'Authorization: Bearer <key>'.", "type": "authentication_error",
        "param": None, "code": 401}}


def test_guard_sheds_with_429_once_full_and_counts_back_down():
    release = asyncio.Event()

    async def slow_app(scope, receive, send):
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def scenario():
        mw = GuardMiddleware(slow_app, max_inflight=2)
        running = [asyncio.create_task(_call(mw, "/v1/completions")) for _ in range(2)]
        await asyncio.sleep(0)
        status, sent = await _call(mw, "/v1/chat/completions")
        assert status == 429 and json.loads(sent[1]["body"])["error"]["type"] == "rate_limit_exceeded"
        assert (b"retry-after", b"1") in sent[0]["headers"]
        assert (b"content-type", b"application/json") in sent[0]["headers"]
        models = asyncio.create_task(_call(mw, "/v1/models"))  # only generation is limited:
        await asyncio.sleep(0)
        assert mw.inflight == 2 and not models.done()  # it reached the (blocked) app, no 429
        release.set()
        assert [(await t)[0] for t in running] == [200, 200] and (await models)[0] == 200
        assert mw.inflight == 0
        assert (await _call(mw, "/v1/completions"))[0] == 200

    asyncio.run(scenario())


def test_llm_request_error_survives_pickling():
    err = pickle.loads(pickle.dumps(LLMRequestError(404, "no model", "NotFoundError", "model")))
    assert (err.status_code, err.message, err.type, err.param) == (404, "no model", "NotFoundError", "model")
    assert err.to_body() == {"error": {"message": "no model", "type": "NotFoundError", "param": "model", "code": 404}}


def test_build_app_accepts_cli_json_strings(monkeypatch):
    import serve.llm.app

    monkeypatch.setattr(serve.llm.app, "build_llm", lambda llm, api_key=None: llm)
    llm = serve.llm.app.build_app({"llm": '{"model": "/m", "served_model_name": "x"}', "http_port": 18001})
    assert (llm.model, llm.served_model_name) == ("/m", "x")


def test_overload_limits_are_on_by_default_and_derived_from_max_num_seqs():
    cfg = LLMServeConfig(model="/m", max_num_seqs=4)
    assert cfg.admission_limit() == 8 and cfg.ongoing_limit() == 32  # one batch decodes, one waits
    assert cfg.max_queued_requests == -1  # Serve's queue never answers before the 429 guard
    assert LLMServeConfig(model="/m", max_num_seqs=4, max_engine_waiting=0).admission_limit() == 4
    assert LLMServeConfig().api_key_env == "LLMFLOW_API_KEY"  # auth on by default
    with pytest.raises(ValueError, match="must exceed the admission limit"):
        LLMServeConfig(model="/m", max_num_seqs=4, max_ongoing_requests=8)


def test_handle_calls_and_http_share_one_admission():
    from serve.errors import Admission

    adm = Admission(1)
    mw = GuardMiddleware(None, admission=adm)
    assert adm.try_enter() and not adm.try_enter()  # a handle call holds the only slot
    assert mw.inflight == 1 and "limit 1" in adm.busy_message()
    adm.leave()
    assert adm.try_enter()


def test_flow_key_file_is_private_and_reused(tmp_path, monkeypatch):
    from components.artifacts import Endpoint
    from serve.steps.auth import endpoint_api_key, flow_api_key, read_or_create_key

    monkeypatch.delenv("LLMFLOW_TEST_KEY", raising=False)
    state = tmp_path / ".llmflow" / "state"
    key, path = flow_api_key("LLMFLOW_TEST_KEY", state)
    assert path == tmp_path / ".llmflow" / "secrets" / "api_key"
    assert (path.stat().st_mode & 0o777) == 0o600 and (path.parent.stat().st_mode & 0o777) == 0o700
    assert read_or_create_key(path) == key and flow_api_key("LLMFLOW_TEST_KEY", state) == (key, path)
    assert flow_api_key(None, state) == (None, None)
    with pytest.raises(ValueError, match="export LLMFLOW_TEST_KEY"):
        flow_api_key("LLMFLOW_TEST_KEY", None)
    def endpoint(**keys):
        return Endpoint(served="llm", url="http://x/v1", health_url="http://x/health", app_name="llm",
                        deployment="LLMServer", model="llmflow", **keys)

    with_file = endpoint(api_key_env="LLMFLOW_TEST_KEY", api_key_file=str(path))
    assert endpoint_api_key(with_file) == key and endpoint_api_key(endpoint(api_key_env=None)) is None
    monkeypatch.setenv("LLMFLOW_TEST_KEY", "env-wins")
    assert endpoint_api_key(with_file) == "env-wins" and flow_api_key("LLMFLOW_TEST_KEY", state) == ("env-wins", None)
    monkeypatch.delenv("LLMFLOW_TEST_KEY")
    with pytest.raises(ValueError, match="export LLMFLOW_TEST_KEY"):
        endpoint_api_key(endpoint(api_key_env="LLMFLOW_TEST_KEY", api_key_file=str(tmp_path / "missing")))


def test_worker_niceness_goes_into_the_replicas_runtime_env():
    from serve.llm.deployment import llm_deployment

    def env(**kw):
        cfg = LLMServeConfig(model="/m", api_key_env=None, **kw)
        return llm_deployment(cfg).ray_actor_options["runtime_env"]["env_vars"]

    assert "RAY_worker_niceness" not in env()  # None: Ray's default, the proxy's too
    assert env(worker_niceness=0)["RAY_worker_niceness"] == "0"
    with pytest.raises(ValueError, match="worker_niceness"):
        LLMServeConfig(worker_niceness=20)
