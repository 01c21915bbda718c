"""A KL-distilled draft agrees with the target's greedy choices more often than a data-only draft."""
import json

import pytest

pytestmark = pytest.mark.integration


def test_distilled_draft_beats_data_only(tmp_path, trained_lm_dir, tokens_dir):
    from transformers import AutoConfig

    from components.distill.config import DraftDistillConfig
    from components.distill.steps import run_draft
    from flows.engine.context import StepContext

    cfg = DraftDistillConfig(depth=1, width=64, num_steps=60, batch_size=8, learning_rate=5e-3,
                             num_eval_prompts=24, eval_prefix_len=16, eval_new_tokens=24)
    s = run_draft(StepContext.for_test(tmp_path, {"model": trained_lm_dir, "tokens": tokens_dir}), cfg)
    assert s["distilled_acceptance_rate"] > s["data_only_acceptance_rate"], s
    assert s["distilled_tokens_per_target_forward"] >= s["data_only_tokens_per_target_forward"]
    dc = AutoConfig.from_pretrained(tmp_path / "model")
    assert dc.head_dim >= 32 and dc.hidden_size < AutoConfig.from_pretrained(trained_lm_dir).hidden_size
    assert (tmp_path / "model" / "tokenizer.json").exists()
    assert json.loads((tmp_path / "report.json").read_text())["draft_params"] < s["target_params"]
