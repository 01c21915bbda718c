"""Integration: the live Serve app through the official openai client (one app per session)."""
from __future__ import annotations

import httpx
import openai
import pytest

from tests.serve.llm_app_settings import API_KEY

pytestmark = pytest.mark.integration


def test_models_lists_base_and_adapter(client):
    ids = [m.id for m in client.models.list().data]
    assert ids[0] == "tiny" and "tiny-sft" in ids


def test_health_is_open_without_key(llm_app):
    assert httpx.get(llm_app["health_url"], timeout=10).status_code == 200


def test_completion_greedy_is_deterministic_and_controls_pass_through(client):
    a = client.completions.create(model="tiny", prompt="The module", max_tokens=8, temperature=0)
    b = client.completions.create(model="tiny", prompt="The module", max_tokens=8, temperature=0)
    assert a.choices[0].text == b.choices[0].text
    assert a.usage.completion_tokens == 8 and a.choices[0].finish_reason == "length"
    # n, logprobs, seed: two sampled choices with per-token logprobs, reproducible by seed
    s1 = client.completions.create(model="tiny", prompt="The module", max_tokens=6, temperature=1.0, top_p=0.9,
                                   extra_body={"top_k": 50}, seed=7, n=2, logprobs=2)
    s2 = client.completions.create(model="tiny", prompt="The module", max_tokens=6, temperature=1.0, top_p=0.9,
                                   extra_body={"top_k": 50}, seed=7, n=2, logprobs=2)
    assert len(s1.choices) == 2
    assert [c.text for c in s1.choices] == [c.text for c in s2.choices]
    assert len(s1.choices[0].logprobs.token_logprobs) == 6


def test_stop_string_cuts_output(client):
    full = client.completions.create(model="tiny", prompt="The module", max_tokens=12, temperature=0).choices[0].text
    stop = full[len(full) // 2:][:2]
    if not stop.strip():
        pytest.skip("greedy output has no usable stop substring")
    cut = client.completions.create(model="tiny", prompt="The module", max_tokens=12, temperature=0, stop=[stop])
    assert cut.choices[0].finish_reason == "stop" and stop not in cut.choices[0].text
    assert full.startswith(cut.choices[0].text)


def test_chat_and_streaming_match_non_streaming(client):
    msgs = [{"role": "user", "content": "What is a list?"}]
    full = client.chat.completions.create(model="tiny", messages=msgs, max_tokens=10, temperature=0)
    assert full.choices[0].message.role == "assistant" and full.usage.completion_tokens > 0
    chunks = client.chat.completions.create(model="tiny", messages=msgs, max_tokens=10, temperature=0, stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == full.choices[0].message.content
    ctext = client.completions.create(model="tiny", prompt="Lists", max_tokens=10, temperature=0).choices[0].text
    cstream = client.completions.create(model="tiny", prompt="Lists", max_tokens=10, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in cstream) == ctext


def test_adapter_by_name_changes_output(client):
    base = client.completions.create(model="tiny", prompt="The module", max_tokens=12, temperature=0)
    lora = client.completions.create(model="tiny-sft", prompt="The module", max_tokens=12, temperature=0)
    again = client.completions.create(model="tiny-sft", prompt="The module", max_tokens=12, temperature=0)
    assert lora.model == "tiny-sft"
    assert lora.choices[0].text == again.choices[0].text
    assert lora.choices[0].text != base.choices[0].text


# -- errors: 4xx with OpenAI-style bodies, and the server keeps serving -------------------
def _assert_openai_error(resp: httpx.Response, status: int):
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["message"] and err["type"]


def test_malformed_json_is_400(llm_app, client):
    r = httpx.post(f"{llm_app['url']}/completions", content=b'{"model": "tiny", "prompt": ',
                   headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}, timeout=30)
    _assert_openai_error(r, 400)
    assert client.completions.create(model="tiny", prompt="ok", max_tokens=2).choices[0].text is not None


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="no-such-model", prompt="hi", max_tokens=2)
    assert "no-such-model" in str(e.value)


def test_prompt_longer_than_context_is_400(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="tiny", prompt="word " * 2000, max_tokens=4)
    assert e.value.status_code == 400


@pytest.mark.parametrize("params", [{"temperature": -1.0}, {"top_p": 1.5}, {"max_tokens": -3},
                                    {"extra_body": {"top_k": -5}}, {"n": 0}])
def test_out_of_range_sampling_is_400(client, params):
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt="hi", **{"max_tokens": 2, **params})


def test_missing_or_wrong_api_key_is_401(llm_app):
    bad = openai.OpenAI(base_url=llm_app["url"], api_key="wrong-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.models.list()
    assert e.value.body["type"] == "authentication_error"
    r = httpx.post(f"{llm_app['url']}/completions", json={"model": "tiny", "prompt": "hi"}, timeout=10)
    _assert_openai_error(r, 401)


@pytest.mark.parametrize("method,path", [("GET", "/v1/models"), ("POST", "/v1/completions"), ("POST", "/tokenize"),
                                         ("GET", "/metrics"), ("GET", "/version"), ("GET", "/no-such-route")])
def test_every_route_but_health_needs_the_key(llm_app, method, path):
    root = llm_app["url"].removesuffix("/v1")
    for headers in ({}, {"Authorization": "Bearer wrong-key"}):
        r = httpx.request(method, root + path, headers=headers, json={"model": "tiny", "prompt": "hi"}, timeout=30)
        _assert_openai_error(r, 401)
        assert r.json()["error"] == {"message": r.json()["error"]["message"], "type": "authentication_error",
                                     "param": None, "code": 401}
    assert httpx.get(llm_app["health_url"], timeout=30).status_code == 200
