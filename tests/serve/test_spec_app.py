"""Integration: speculative decoding with a draft model *through the Serve app*, and its acceptance metrics.

A second app (the same tiny target, a 1-layer draft cut from it) joins the session's Serve instance
under /spec; its greedy outputs must equal the session app's (speculation off) for the same prompts,
and the engine's draft/accepted-token counters must appear on Ray's Prometheus endpoint.
"""
from __future__ import annotations

import time

import pytest

from tests.serve.llm_app_settings import API_KEY, API_KEY_ENV, HTTP_PORT

# slow: a second vLLM engine (~70 s to start on 2 cores) only for this test; `make test-all` runs it
pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC_APP, SPEC_MODEL = "llmflow-spec-test", "tiny-spec"
PROMPTS = ["The module", "def f(x): return x + 1\ndef g(x): return", "Lists are mutable. Tuples are",
           "The with statement"]


@pytest.fixture(scope="module")
def draft_dir(tmp_path_factory, tiny_model_dir):
    """The target's first layer with its embeddings and head: agrees with the target part of the time,
    so verification both accepts and rejects."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(tiny_model_dir)
    model.model.layers = model.model.layers[:1]
    model.config.num_hidden_layers = 1
    out = tmp_path_factory.mktemp("tiny_draft")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def spec_client(llm_app, tiny_model_dir, draft_dir):
    from openai import OpenAI
    from ray import serve

    from serve.llm.app import build_llm, wait_healthy
    from serve.llm.config import LLMServeConfig, SpeculativeConfig

    cfg = LLMServeConfig(model=str(tiny_model_dir), served_model_name=SPEC_MODEL, max_num_seqs=4,
                         speculative=SpeculativeConfig(method="draft_model", draft_model=str(draft_dir),
                                                       num_speculative_tokens=3),
                         api_key_env=API_KEY_ENV, num_cpus=0.5)
    serve.run(build_llm(cfg), name=SPEC_APP, route_prefix="/spec")
    wait_healthy(f"http://127.0.0.1:{HTTP_PORT}/spec/health", 300)
    yield OpenAI(base_url=f"http://127.0.0.1:{HTTP_PORT}/spec/v1", api_key=API_KEY, max_retries=0, timeout=120)
    serve.delete(SPEC_APP)


def _greedy(client, model: str) -> list[str]:
    return [client.completions.create(model=model, prompt=p, max_tokens=24, temperature=0,
                                      extra_body={"ignore_eos": True}).choices[0].text for p in PROMPTS]


def test_draft_model_greedy_equals_plain_greedy_and_acceptance_reaches_prometheus(client, spec_client):
    import ray

    from serve.llm.spec_metrics import acceptance, scrape, spec_counts

    assert _greedy(spec_client, SPEC_MODEL) == _greedy(client, "tiny")

    port = ray.nodes()[0]["MetricsExportPort"]
    counts, deadline = {}, time.time() + 60  # Ray's agent exports on an interval (~10 s)
    while time.time() < deadline:
        counts = spec_counts(scrape(port)).get(SPEC_MODEL, {})
        if counts.get("num_drafts", 0) > 0:
            break
        time.sleep(3)
    assert counts.get("num_drafts", 0) > 0, f"no spec-decode counters for {SPEC_MODEL} on :{port}/metrics"
    assert counts["num_draft_tokens"] >= counts["num_drafts"]
    acc = acceptance(counts)
    assert 0.0 <= acc["acceptance_rate"] <= 1.0
    assert 1.0 <= acc["mean_accepted_length"] <= 1 + 3
