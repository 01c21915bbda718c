"""Unit: acceptance rate and mean accepted length from Prometheus text (serve/llm/spec_metrics.py)."""
from __future__ import annotations

from serve.llm.spec_metrics import acceptance, delta, spec_counts

TEXT = """\
# HELP ray_vllm_spec_decode_num_drafts_total Number of spec decoding drafts.
ray_vllm_spec_decode_num_drafts_total{Component="core_worker",engine="0",model_name="spec"} 10.0
ray_vllm_spec_decode_num_draft_tokens_total{Component="core_worker",engine="0",model_name="spec"} 40.0
ray_vllm_spec_decode_num_accepted_tokens_total{Component="core_worker",engine="0",model_name="spec"} 30.0
ray_vllm_spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="spec",position="0"} 9.0
vllm_spec_decode_num_drafts{engine="1",model_name="spec"} 2.0
ray_vllm_spec_decode_num_drafts_total{engine="0",model_name="other"} NaN
ray_vllm_generation_tokens_total{engine="0",model_name="spec"} 99.0
"""


def test_counters_summed_per_model_and_per_pos_ignored():
    counts = spec_counts(TEXT)
    assert counts["spec"] == {"num_drafts": 12.0, "num_draft_tokens": 40.0, "num_accepted_tokens": 30.0}
    assert "other" not in counts


def test_acceptance_and_mean_length():
    acc = acceptance({"num_drafts": 10.0, "num_draft_tokens": 40.0, "num_accepted_tokens": 30.0})
    assert acc == {"acceptance_rate": 0.75, "mean_accepted_length": 4.0, "num_drafts": 10.0}
    assert acceptance({})["acceptance_rate"] is None


def test_delta_between_scrapes():
    after = {"num_drafts": 12.0, "num_draft_tokens": 48.0, "num_accepted_tokens": 33.0}
    before = {"num_drafts": 10.0, "num_draft_tokens": 40.0, "num_accepted_tokens": 30.0}
    assert delta(after, before) == {"num_drafts": 2.0, "num_draft_tokens": 8.0, "num_accepted_tokens": 3.0}
