"""QLoRA (4-bit NF4 base, bitsandbytes) SFT on an imported non-Llama model: GPU only."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.gpu


def test_qlora_sft_on_an_imported_qwen2(tmp_path, hf_model_dirs):
    pytest.importorskip("bitsandbytes")
    from pydoc_data.topics import topics

    from components.models.import_config import ImportConfig
    from components.models.steps import run_import
    from components.sft.config import LoRASettings, SFTConfig
    from components.sft.train_loop import sft_train
    from flows.engine.context import StepContext

    run_import(StepContext.for_test(tmp_path / "base"), ImportConfig(source=str(hf_model_dirs["qwen2"])))
    rows = [{"messages": [{"role": "user", "content": f"What does the {k} topic say?"},
                          {"role": "assistant", "content": topics[k][:200]}]} for k in sorted(topics)[:40]]
    chats = tmp_path / "chats.jsonl"
    chats.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = SFTConfig(num_steps=20, batch_size=8, max_seq_len=96, learning_rate=1e-2, num_eval_examples=8,
                    lora=LoRASettings(quantize_4bit=True))
    history = sft_train({"model_dir": str(tmp_path / "base" / "model"), "train_path": str(chats),
                         "eval_path": str(chats), "settings": cfg.model_dump()})
    # Evaluated on the training chats: 20 steps on a 4-bit random-init base must fit them somewhat.
    assert history[-1]["eval_response_loss"] < history[0]["eval_response_loss"] - 0.1, history[-1]
