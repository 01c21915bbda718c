import subprocess
import sys

import pytest

from components.eval.kinds import KINDS


def test_eval_offline_kind_and_config():
    kind = {k.name: k for k in KINDS}["eval.offline"]
    assert kind.required_inputs == {"model", "data"} and kind.all_inputs == {"model", "data", "adapter", "tokens", "index"}
    cfg = kind.config_model().model_validate({"max_questions": 4, "gate": {"metric": "perplexity"}})
    assert cfg.gate.higher_is_better is False and cfg.judge.enabled is False
    with pytest.raises(ValueError, match="max_questiosn"):
        kind.config_model().model_validate({"max_questiosn": 4})
    assert callable(kind.run_fn())


def test_judge_key_env_must_exist(monkeypatch):
    from components.eval.config import JudgeConfig

    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ValueError, match="NO_SUCH_KEY_VAR"):
        JudgeConfig(base_url="http://127.0.0.1:1/v1", api_key_env="NO_SUCH_KEY_VAR")


def test_config_modules_import_nothing_heavy():
    code = ("import sys, components.eval.kinds, components.eval.config, serve.online_eval.config; "
            "print(sorted(m for m in ('torch', 'ray', 'vllm', 'transformers', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
