"""Zero-downtime champion switch on the live stack: a candidate LoRA is loaded into the session's running vLLM
engine (no restart), the router is switched to shadow it, then promoted to champion, then rolled back with
the one command — while a client keeps sending requests (plain and streamed). No request may fail, and
each phase's answers come from the model that phase routes to."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.fixtures.mlflow_store import sqlite_uri
from tests.serve.llm_app_settings import API_KEY, API_KEY_ENV

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {API_KEY}"}
QUESTIONS = ["What does the assert statement do?", "How does a while loop end?", "What is a lambda?"]


@pytest.fixture(scope="module")
def candidate_adapter(tmp_path_factory, tiny_model_dir):
    """A second rank-8 LoRA (random B, another seed): answers visibly differ from the base model's."""
    from tests.fixtures.hf_models import write_random_lora

    return write_random_lora(tiny_model_dir, tmp_path_factory.mktemp("cand_adapter"), rank=8, seed=7)


def ask(url: str, i: int) -> tuple[int, str | None]:
    body = {"model": "x", "user": f"u{i}", "stream": i % 2 == 1, "max_tokens": 8,
            "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=AUTH, timeout=120) as r:
        raw = r.read()
        if r.status_code != 200:
            return r.status_code, raw.decode()[:200]
        if not body["stream"]:
            return 200, json.loads(raw)["model"]
        lines = [ln for ln in raw.decode().splitlines() if ln.startswith("data: {")]
        if any("error" in json.loads(ln[6:]) for ln in lines):
            return 500, "in-band error"
        return 200, json.loads(lines[0][6:])["model"]


def test_candidate_loads_live_and_champion_switches_and_rolls_back_without_a_failed_request(
        llm_app, rag_index_dir, tiny_model_dir, candidate_adapter, tmp_path):
    from ray import serve
    from ray.serve.context import _get_global_client

    from serve.online_eval.config import OnlineEvalConfig
    from serve.router import control
    from serve.router.app import build_router
    from serve.router.config import RouterConfig
    from serve.router.control import RoutingState

    handle = serve.get_deployment_handle(llm_app["deployment"], app_name=llm_app["app_name"])
    names = handle.load_adapter.remote("cand-switch", str(candidate_adapter)).result(timeout_s=120)
    assert "cand-switch" in names and "cand-switch" in handle.models.remote().result(timeout_s=30)

    os.environ[API_KEY_ENV] = API_KEY
    path = tmp_path / "router_control.json"
    control.deploy(path, RoutingState(model="tiny", model_version="rag v1", reason="deploy"))
    online = OnlineEvalConfig(tracking_uri=sqlite_uri(tmp_path), embed_queries=False, sample_rate=1.0,
                              judge_rate=0.0, feedback_path=str(tmp_path / "feedback.jsonl"))
    config = RouterConfig(index_dir=str(rag_index_dir), fallback="generate", max_source_chars=300,
                          tokenizer=str(tiny_model_dir), max_model_len=512, default_max_tokens=8, num_cpus=0.25,
                          online_eval=online, control_path=str(path), control_poll_s=0.1)
    serve.run(build_router(config, handle, api_key_env=API_KEY_ENV), name="ragswitch", route_prefix="/ragswitch")
    url = f"http://127.0.0.1:{_get_global_client().http_config.port}/ragswitch"
    results: list[tuple[float, int, str | None]] = []
    stop = threading.Event()

    def client():
        i = 0
        while not stop.is_set():
            started = time.monotonic()  # a request routes when it starts: a slow one may end after the switch
            status, model = ask(url, i)
            results.append((started, status, model))
            i += 1

    def phase(seconds: float) -> tuple[float, float]:
        t0 = time.monotonic()
        time.sleep(seconds)
        # 0.5 s margins: a switch is seen within control_poll_s; a request reaches the router a little after it starts
        return t0 + 0.5, time.monotonic() - 0.5

    threads = [threading.Thread(target=client) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        before = phase(3)
        control.switch(path, "shadow cand-switch",
                       arms={"mode": "shadow", "candidate_share": 1.0, "candidate_model": "cand-switch"})
        shadowed = phase(3)
        control.switch(path, "promote cand-switch", model="cand-switch", model_version="rag v2", arms={"mode": "off"})
        promoted = phase(3)
        page = httpx.get(f"{url}/", timeout=30).text
        out = subprocess.run([sys.executable, "-m", "serve.router.control", "rollback", str(path)],
                             capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        rolled_back = phase(3)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
        serve.delete("ragswitch")
    failed = [r for r in results if r[1] != 200]
    assert not failed, failed
    assert "rag v2" in page  # the page names the version it serves

    def models(window):
        return {m for t, _, m in results if window[0] <= t <= window[1]}

    assert models(before) == {"tiny"} and models(shadowed) == {"tiny"}  # users never see a shadow
    assert models(promoted) == {"cand-switch"}
    assert models(rolled_back) == {"tiny"}
    assert len(results) >= 12, len(results)
