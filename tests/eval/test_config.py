"""Offline evaluation configs: the gate follows its metric's direction, typos and missing keys fail clearly."""
from __future__ import annotations

import pytest

from components.eval.config import JudgeConfig, OfflineEvalConfig


def test_offline_eval_config():
    cfg = OfflineEvalConfig.model_validate({"max_questions": 4, "gate": {"metric": "perplexity"}})
    assert cfg.gate.higher_is_better is False and cfg.judge.enabled is False
    with pytest.raises(ValueError, match="max_questiosn"):
        OfflineEvalConfig.model_validate({"max_questiosn": 4})


def test_judge_key_env_must_exist(monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ValueError, match="NO_SUCH_KEY_VAR"):
        JudgeConfig(base_url="http://127.0.0.1:1/v1", api_key_env="NO_SUCH_KEY_VAR")
