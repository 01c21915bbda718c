"""The main job, end to end, at its smallest size: every step's artifact and MLflow run exist,
the served stack answers plain and RAG requests, and a second run recomputes nothing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from components.tracking.mlflow_tracking import search_runs
from flows.engine.runner import FlowRunner
from flows.engine.store import MARKER
from flows.recipe import load_recipe

pytestmark = pytest.mark.integration

# Smallest sizes that still show each stage working; the serving apps get their own routes on the
# test session's Serve (port 18000), next to the serving tests' app.
SMALLEST = [
    "steps.pretrain.config.max_steps=20", "steps.pretrain.config.eval_every=20",
    "steps.pretrain.config.checkpoint_every=20", "steps.pretrain.config.micro_batch_size=4",
    "steps.draft.config.num_steps=20", "steps.sft.config.max_steps=8", "steps.grpo.config.num_steps=2",
    "steps.evaluate.config.max_questions=4", "steps.index.config.max_docs=20", "steps.rag_eval.config.num_queries=10",
    "steps.serve.config.app.http_port=18000", "steps.serve.config.app.app_name=e2e-llm",
    "steps.serve.config.app.route_prefix=/e2e", "steps.rag_serve.config.app_name=e2e-rag",
    "steps.rag_serve.config.route_prefix=/e2e-rag",
]


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, ray_local):
    workdir = tmp_path_factory.mktemp("e2e")
    recipe = load_recipe("e2e", SMALLEST)
    first = FlowRunner(recipe, workdir=workdir, console=Console(quiet=True)).run()
    second = FlowRunner(load_recipe("e2e", SMALLEST), workdir=workdir, console=Console(quiet=True)).run()
    yield recipe, workdir, first, second
    from ray import serve

    for app in ("e2e-rag", "e2e-llm"):
        serve.delete(app)


def test_every_step_ran_and_left_a_complete_artifact(e2e):
    recipe, _, first, _ = e2e
    assert first.ok, {n: o.error for n, o in first.outcomes.items() if o.error}
    assert set(first.outcomes) == set(recipe.order)
    for name, o in first.outcomes.items():
        assert o.status == "done", name
        assert (Path(o.uri) / MARKER).exists(), name
    assert (Path(first.outcomes["pretrain"].uri) / "model" / "config.json").exists()
    assert (Path(first.outcomes["grpo"].uri) / "adapter" / "adapter_config.json").exists()
    assert (Path(first.outcomes["draft"].uri) / "model" / "config.json").exists()


def test_every_step_has_a_nested_mlflow_run_with_lineage(e2e):
    recipe, workdir, first, _ = e2e
    runs = search_runs(f"sqlite:///{workdir / 'mlflow.db'}", "llmflow")
    children = {r.data.tags["llmflow.step"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == first.run_id}
    assert set(children) == set(recipe.order)
    assert children["pretrain"].data.tags["llmflow.input.tokens"].startswith("tokens@")
    assert children["serve"].data.tags["llmflow.input.draft"].startswith("draft@")
    assert "val_loss" in children["pretrain"].data.metrics
    assert "rag_retrieval_hit" in children["evaluate"].data.metrics  # offline RAG groundedness ran on the index


def test_second_run_recomputes_nothing_cacheable(e2e):
    recipe, _, _, second = e2e
    assert second.ok
    live = {n for n in recipe.order if not recipe.kind(n).cacheable}  # the running services
    assert live == {"serve", "rag_serve", "smoke"}
    assert set(second.recomputed()) == live
    assert all(second.outcomes[n].status == "cached" for n in recipe.order if n not in live)


def test_endpoint_answers_plain_and_rag_requests(e2e):
    from openai import OpenAI

    _, _, _, second = e2e
    llm = json.loads((Path(second.outcomes["serve"].uri) / "endpoint.json").read_text())
    rag = json.loads((Path(second.outcomes["rag_serve"].uri) / "endpoint.json").read_text())
    plain = OpenAI(base_url=llm["url"], api_key="none", max_retries=0, timeout=120).completions.create(
        model=llm["model"], prompt="The with statement", max_tokens=8)
    assert plain.usage.completion_tokens > 0
    answer = OpenAI(base_url=rag["url"], api_key="none", max_retries=0, timeout=120).chat.completions.create(
        model="llmflow-rag", max_tokens=8, messages=[{"role": "user", "content": "What does the assert statement do?"}])
    assert answer.model_extra["rag"]["route"] == "rag" and answer.model_extra["rag"]["sources"]
    smoke = json.loads((Path(second.outcomes["smoke"].uri) / "smoke.json").read_text())
    assert all(c["ok"] for c in smoke.values())
