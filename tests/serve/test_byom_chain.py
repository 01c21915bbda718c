"""Bring your own model, the whole chain on a non-Llama architecture: a user's Qwen2 directory → models.import →
sft.lora → distill.draft (Qwen2 draft, layer-drop init, the target's tokenizer) → serve.deploy with the adapter and
draft-model speculative decoding → an answer through the official OpenAI client. On the session's Ray cluster, and
on its Serve instance when one is running (another app on its own route prefix)."""
from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
HTTP_PORT = 18710  # only when no Serve instance is running yet (issue 18's range)
APP = "byom-chain"


def test_imported_qwen2_to_an_openai_answer_with_a_distilled_draft(tmp_path, monkeypatch, ray_local, hf_model_dirs,
                                                                   tiny_tokenizer_dir, stdlib_texts, rag_docs_dir):
    from openai import OpenAI
    from ray import serve
    from ray.serve.context import _get_global_client
    from transformers import AutoConfig

    from components.artifacts import Endpoint
    from components.distill.config import DraftDistillConfig
    from components.distill.steps import run_draft
    from components.models.architectures import SUPPORTED
    from components.models.compat import check_draft
    from components.models.import_config import ImportConfig
    from components.models.steps import run_import
    from components.sft.config import SFTConfig, SFTDatasetConfig
    from components.sft.steps import run_dataset, run_lora
    from flows.engine.context import StepContext
    from serve.llm.config import ServeDeployConfig
    from serve.steps.deploy import run_deploy
    from tests.fixtures.tiny_lm import write_token_shards

    def ctx(name, **inputs):
        return StepContext.for_test(tmp_path / name, inputs, name=name)

    run_import(ctx("base"), ImportConfig(source=str(hf_model_dirs["qwen2"])))
    run_dataset(ctx("data", docs=rag_docs_dir), SFTDatasetConfig(grounded_share=0.0, grpo_tasks=["arithmetic"],
                                                                 num_arithmetic_prompts=8))
    run_lora(ctx("sft", model=tmp_path / "base", data=tmp_path / "data"),
             SFTConfig(num_steps=3, batch_size=4, max_seq_len=96, num_eval_examples=4, min_gain_vs_base=0.0))
    write_token_shards(tmp_path / "tokens", tiny_tokenizer_dir, stdlib_texts[:12], seq_len=64)
    run_draft(ctx("draft", model=tmp_path / "base", tokens=tmp_path / "tokens"),
              DraftDistillConfig(depth=1, architecture="target", init_from_target=True, num_steps=5, batch_size=4,
                                 compare_data_only=False, num_eval_prompts=2, eval_prefix_len=8, eval_new_tokens=8))

    adapter = json.loads((tmp_path / "sft" / "adapter" / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == sorted(SUPPORTED["Qwen2ForCausalLM"].lora_targets)
    draft = AutoConfig.from_pretrained(tmp_path / "draft" / "model")
    assert draft.model_type == "qwen2" and draft.num_hidden_layers == 1  # layer-drop of the target's own kind
    check_draft(tmp_path / "base" / "model", tmp_path / "draft" / "model")  # the target's tokenizer went with it

    running = _get_global_client(raise_if_no_controller_running=False)
    port = running.http_config.port if running is not None else HTTP_PORT
    monkeypatch.delenv("LLMFLOW_API_KEY", raising=False)
    deploy = ctx("serve", model=tmp_path / "base", adapter=tmp_path / "sft", draft=tmp_path / "draft")
    deploy.state_dir = tmp_path / "state"
    config = ServeDeployConfig.model_validate({"smoke_max_tokens": 4, "app": {
        "app_name": APP, "route_prefix": "/byom", "http_port": port, "start_timeout_s": 300,
        "llm": {"served_model_name": "my-qwen", "max_num_seqs": 2, "max_model_len": 256, "max_lora_rank": 8,
                "num_cpus": 0.5, "api_key_env": None, "speculative": {"num_speculative_tokens": 2}}}})
    try:
        run_deploy(deploy, config)
        endpoint = Endpoint.read(tmp_path / "serve", served="llm")
        assert endpoint.speculative["method"] == "draft_model"
        assert endpoint.speculative["draft_model"] == str(tmp_path / "draft" / "model")
        assert endpoint.models == ["my-qwen", "sft"] and endpoint.served_model == "sft"
        client = OpenAI(base_url=endpoint.url, api_key="none", max_retries=2, timeout=120)
        for model in endpoint.models:  # the imported base, and its SFT adapter
            reply = client.chat.completions.create(model=model, max_tokens=8, temperature=0.0,
                                                   messages=[{"role": "user", "content": "What is a generator?"}])
            assert reply.model == model and reply.usage.completion_tokens > 0
            assert isinstance(reply.choices[0].message.content, str)
    finally:
        serve.delete(APP)
        if running is None:  # leave no Serve behind on a port no other test uses
            serve.shutdown()
