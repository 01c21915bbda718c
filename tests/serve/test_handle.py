"""Integration: the DeploymentHandle API the RAG router uses (generate / generate_stream / models)."""
from __future__ import annotations

import asyncio

import pytest

from tests.serve.llm_app_settings import APP_NAME

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def handle(llm_app):
    from ray import serve

    return serve.get_deployment_handle(llm_app["deployment"], app_name=APP_NAME)


def test_generate_matches_http(handle, client):
    msgs = [{"role": "user", "content": "What is a dict?"}]
    out = handle.generate.remote(messages=msgs, sampling={"max_tokens": 8, "temperature": 0}).result()
    http = client.chat.completions.create(model="tiny", messages=msgs, max_tokens=8, temperature=0)
    assert out["text"] == http.choices[0].message.content
    assert out["completion_tokens"] == http.usage.completion_tokens and out["model"] == "tiny"
    comp = handle.generate.remote(prompt="The module", model="tiny-sft", sampling={"max_tokens": 8}).result()
    assert comp["model"] == "tiny-sft" and comp["completion_tokens"] == 8


def test_generate_stream_concatenates_to_generate(handle):
    msgs = [{"role": "user", "content": "Explain tuples."}]
    whole = handle.generate.remote(messages=msgs, sampling={"max_tokens": 10, "temperature": 0}).result()["text"]

    async def collect():
        gen = handle.options(stream=True).generate_stream.remote(messages=msgs,
                                                                 sampling={"max_tokens": 10, "temperature": 0})
        return [d async for d in gen]

    deltas = asyncio.run(collect())
    assert len(deltas) > 1 and "".join(deltas) == whole


def test_handle_errors_carry_http_status(handle):
    from serve.errors import LLMRequestError

    with pytest.raises(LLMRequestError) as e:
        handle.generate.remote(prompt="hi", model="nope", sampling={"max_tokens": 2}).result()
    assert e.value.status_code == 404
    with pytest.raises(LLMRequestError) as e:
        handle.generate.remote(prompt="hi", sampling={"temperature": -2}).result()
    assert e.value.status_code == 400
    # The shared app's own models come first; flywheel tests load candidate adapters on it at run time.
    assert handle.models.remote().result()[:2] == ["tiny", "tiny-sft"]
