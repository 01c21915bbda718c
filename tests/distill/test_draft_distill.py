"""A KL-distilled draft agrees with the target's greedy choices more often than a data-only draft."""
import json

import pytest

pytestmark = pytest.mark.integration


def test_distilled_draft_on_two_workers_beats_data_only(tmp_path, ray_local, trained_lm_dir, tokens_dir):
    from transformers import AutoConfig

    from components.distill.config import DraftDistillConfig
    from components.distill.steps import run_draft
    from flows.engine.context import StepContext

    # Both drafts start from the same layer-drop copy of the target (1 of its 2 layers) and get
    # the same 30 steps on the same blocks: one learns from the target's logits, one from the tokens.
    cfg = DraftDistillConfig(depth=1, init_from_target=True, num_steps=30, batch_size=8, learning_rate=3e-3,
                             num_eval_prompts=24, eval_prefix_len=16, eval_new_tokens=24, num_workers=2)
    s = run_draft(StepContext.for_test(tmp_path, {"model": trained_lm_dir, "tokens": tokens_dir}), cfg)
    # Stated margin: 5 points of greedy acceptance.
    assert s["distilled_acceptance_rate"] > s["data_only_acceptance_rate"] + 0.05, s
    assert s["distilled_tokens_per_target_forward"] > s["data_only_tokens_per_target_forward"]
    dc, tc = AutoConfig.from_pretrained(tmp_path / "model"), AutoConfig.from_pretrained(trained_lm_dir)
    assert dc.head_dim >= 32 and dc.num_hidden_layers < tc.num_hidden_layers
    assert s["draft_params"] < s["target_params"]
    assert (tmp_path / "model" / "tokenizer.json").exists()
    assert json.loads((tmp_path / "report.json").read_text())["data_only_acceptance_rate"] == s["data_only_acceptance_rate"]
