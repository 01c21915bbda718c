"""serve.deploy serves what the gate decided: the promoted candidate, else the champion, else the base."""
from __future__ import annotations

import json

import pytest

from serve.steps.deploy import gate_decision


def _gate(tmp_path, **gate):
    d = tmp_path / "evaluate"
    d.mkdir(exist_ok=True)
    (d / "gate.json").write_text(json.dumps(gate))
    return d


def _adapter(path):
    (path / "adapter").mkdir(parents=True)
    (path / "adapter" / "adapter_config.json").write_text("{}")
    return path


def test_no_gate_input_serves_the_adapter():
    assert gate_decision(None)["serve"] == "candidate"


def test_promoted_candidate_is_served(tmp_path):
    d = gate_decision(_gate(tmp_path, promoted=True, gated=True, reason="beats it", candidate={"version": "3"}))
    assert d == {"serve": "candidate", "version": "3", "reason": "beats it"}


def test_ungated_eval_serves_the_candidate(tmp_path):
    d = gate_decision(_gate(tmp_path, promoted=False, gated=False, reason="gate.enabled is false"))
    assert d["serve"] == "candidate"


def test_losing_candidate_keeps_the_champion(tmp_path):
    champ = _adapter(tmp_path / "grpo_v1")
    d = gate_decision(_gate(tmp_path, promoted=False, gated=True, reason="f1: 0.1 vs 0.2",
                            champion={"version": "1", "source": str(champ)}))
    assert d["serve"] == "champion" and d["source"] == str(champ) and "serving champion v1" in d["reason"]


def test_losing_first_candidate_serves_the_base_and_says_why(tmp_path):
    d = gate_decision(_gate(tmp_path, promoted=False, gated=True, reason="does not clear the floor", champion=None))
    assert d["serve"] == "base" and "does not clear the floor" in d["reason"] and "no champion" in d["reason"]
    gone = tmp_path / "deleted"
    d = gate_decision(_gate(tmp_path, promoted=False, gated=True, reason="lost",
                            champion={"version": "2", "source": str(gone)}))
    assert d["serve"] == "base" and "is gone" in d["reason"]


def test_gate_input_that_is_not_an_eval_artifact_names_the_kind(tmp_path):
    with pytest.raises(FileNotFoundError, match="eval.offline"):
        gate_decision(tmp_path)
