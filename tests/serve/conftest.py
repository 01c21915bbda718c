"""One live Serve app for the whole session: the tiny model + a tiny LoRA adapter, on port 18000.

Starting a vLLM engine costs ~40-80 s on 2 cores, so the app starts once and every
integration test talks to it with the official ``openai`` client. Its overload limits are the
defaults derived from a small ``max_num_seqs`` (4 decoding + 4 waiting → 429; Serve's own
limits derived so they never answer first), so overload tests need only a few dozen requests.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.serve.llm_app_settings import API_KEY, API_KEY_ENV, APP_NAME, HTTP_PORT


@pytest.fixture(scope="session")
def tiny_adapter_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """A rank-8 LoRA on q/v with random B (PEFT's default B=0 would make it a no-op)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaForCausalLM

    torch.manual_seed(1)
    model = LlamaForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    with torch.no_grad():  # make the adapter change greedy outputs visibly
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    out = tmp_path_factory.mktemp("tiny_adapter")
    peft_model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def llm_app_config(tiny_model_dir, tiny_adapter_dir):
    from serve.llm.config import AdapterConfig, LLMServeConfig, ServeAppConfig

    return ServeAppConfig(
        llm=LLMServeConfig(model=str(tiny_model_dir), served_model_name="tiny",
                           adapters=[AdapterConfig(name="tiny-sft", path=str(tiny_adapter_dir))],
                           max_lora_rank=8, max_num_seqs=4,
                           api_key_env=API_KEY_ENV, health_check_period_s=2.0, health_check_timeout_s=30.0),
        app_name=APP_NAME, http_port=HTTP_PORT, start_timeout_s=300)


@pytest.fixture(scope="session")
def llm_app(ray_local, llm_app_config):
    """The running app's endpoint description (what serve.deploy writes to endpoint.json)."""
    from ray import serve

    from serve.llm.app import start

    os.environ[API_KEY_ENV] = API_KEY
    info = start(llm_app_config)
    yield info
    serve.delete(APP_NAME)
    serve.shutdown()


@pytest.fixture(scope="session")
def client(llm_app):
    from openai import OpenAI

    return OpenAI(base_url=llm_app["url"], api_key=API_KEY, max_retries=0, timeout=120)
