"""The main job, end to end, at its smallest size, run as a new user runs it (`e2e_stack`: the CLI
on a fresh HOME, its own Ray head): every step's artifact and MLflow run exist, the served stack
answers plain and RAG requests with the key and refuses them without, and (slow tier) a second run
recomputes nothing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.tracking.mlflow_tracking import search_runs
from flows.engine.store import MARKER
from flows.recipe import load_recipe

pytestmark = pytest.mark.integration


def test_a_fresh_home_needs_no_ray_state_and_the_summary_says_where_the_token_is(e2e_stack):
    workdir, home = e2e_stack["workdir"], e2e_stack["home"]
    token = workdir / ".llmflow" / "secrets" / "ray_auth_token"
    assert token.exists() and (token.stat().st_mode & 0o077) == 0
    assert not (home / ".ray").exists(), "Ray's state went to the user's home, not the project"
    # rich wraps long lines in a pipe: compare without whitespace
    assert f"authtoken:{token}" in "".join(e2e_stack["output"].split())
    head = json.loads((workdir / ".llmflow" / "ray_head.json").read_text())
    assert head["token_path"] == str(token)


def test_the_run_output_has_no_warning_loop_from_ray_train(e2e_stack):
    # Without a dashboard Ray Train's placement-group cleaner warned every few seconds of training
    # (flows/engine/cluster.py, LOCAL_RUNTIME_ENV); the user saw it scroll past the flow's own lines.
    log = (e2e_stack["workdir"] / "run1.log").read_text()  # stdout and stderr (worker logs come on stderr)
    assert "Ray Train" in log or "pretrain" in log  # the log is the run's
    assert "Failed to query Ray Train Controller" not in log


def test_every_step_ran_and_left_a_complete_artifact(e2e_stack):
    recipe = load_recipe("e2e")
    steps = e2e_stack["state"]["steps"]
    assert set(steps) == set(recipe.order)
    for name, o in steps.items():
        assert o["status"] == "done", (name, o.get("error"))
        assert (Path(o["uri"]) / MARKER).exists(), name
    assert (Path(steps["pretrain"]["uri"]) / "model" / "config.json").exists()
    assert (Path(steps["grpo"]["uri"]) / "adapter" / "adapter_config.json").exists()
    assert (Path(steps["draft"]["uri"]) / "model" / "config.json").exists()


def test_every_step_has_a_nested_mlflow_run_with_lineage(e2e_stack):
    workdir, state = e2e_stack["workdir"], e2e_stack["state"]
    runs = search_runs(f"sqlite:///{workdir / 'mlflow.db'}", "llmflow")
    children = {r.data.tags["llmflow.step"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == state["run_id"]}
    assert set(children) == set(state["steps"])
    assert children["pretrain"].data.tags["llmflow.input.tokens"].startswith("tokens@")
    assert children["serve"].data.tags["llmflow.input.draft"].startswith("draft@")
    assert "val_loss" in children["pretrain"].data.metrics
    assert "rag_retrieval_hit" in children["evaluate"].data.metrics  # offline RAG groundedness ran on the index
    assert not [r for r in runs if r.info.status == "RUNNING"]


@pytest.mark.slow
def test_second_run_recomputes_nothing_cacheable(e2e_second_run):
    recipe = load_recipe("e2e")
    second = e2e_second_run["steps"]
    live = {n for n in recipe.order if not recipe.kind(n).cacheable}  # the running services
    assert live == {"serve", "rag_serve", "smoke"}
    assert {n for n, o in second.items() if o["status"] == "done"} == live
    assert all(second[n]["status"] == "cached" for n in recipe.order if n not in live)


def test_endpoint_answers_plain_and_rag_requests_with_the_key(e2e_stack):
    import httpx
    from openai import AuthenticationError, OpenAI

    llm, rag, key = e2e_stack["llm"], e2e_stack["rag"], e2e_stack["api_key"]
    assert key, "the default stack must require an API key"
    plain = OpenAI(base_url=llm.url, api_key=key, max_retries=0, timeout=120).completions.create(
        model=llm.model, prompt="The with statement", max_tokens=8)
    assert plain.usage.completion_tokens > 0
    answer = OpenAI(base_url=rag.url, api_key=key, max_retries=0, timeout=120).chat.completions.create(
        model="llmflow-rag", max_tokens=8, messages=[{"role": "user", "content": "What does the assert statement do?"}])
    assert answer.model_extra["rag"]["route"] == "rag" and answer.model_extra["rag"]["sources"]
    for url in (llm.url, rag.url):
        with pytest.raises(AuthenticationError):
            OpenAI(base_url=url, api_key="wrong", max_retries=0, timeout=60).chat.completions.create(
                model="llmflow", max_tokens=4, messages=[{"role": "user", "content": "hi"}])
    assert httpx.get(rag.health_url, timeout=30).status_code == 200  # probes need no key
    smoke = json.loads((Path(e2e_stack["state"]["steps"]["smoke"]["uri"]) / "smoke.json").read_text())
    assert all(c["ok"] for c in smoke.values())
