"""The gate against a real MLflow registry (sqlite in a tmp dir): aliases move only on a win."""
import pytest

from components.eval.config import GateConfig
from components.eval.gate import run_gate
from components.tracking import registry

pytestmark = pytest.mark.integration


def test_gate_promotes_better_and_refuses_worse(mlflow_uri, tmp_path):
    cfg = GateConfig(registered_model="chat", metric="f1", min_delta=0.01, guard_metrics={"exact_match": 0.05})
    first = run_gate(mlflow_uri, cfg, {"f1": 0.30, "exact_match": 0.10}, str(tmp_path / "m1"))
    assert first["promoted"] and first["champion"] is None

    better = run_gate(mlflow_uri, cfg, {"f1": 0.45, "exact_match": 0.12}, str(tmp_path / "m2"))
    assert better["promoted"], better["reason"]
    assert registry.version_by_alias(mlflow_uri, "chat", "champion").version == better["candidate"]["version"]

    worse = run_gate(mlflow_uri, cfg, {"f1": 0.40, "exact_match": 0.12}, str(tmp_path / "m3"))
    assert not worse["promoted"] and "does not beat" in worse["reason"]
    assert worse["champion"]["version"] == better["candidate"]["version"]
    champ = registry.version_by_alias(mlflow_uri, "chat", "champion")
    assert champ.version == better["candidate"]["version"] and champ.metrics["f1"] == pytest.approx(0.45)
    cand = registry.version_by_alias(mlflow_uri, "chat", "candidate")
    assert cand.version == worse["candidate"]["version"] and cand.tags["gate.promoted"] == "False"

    guard = run_gate(mlflow_uri, cfg, {"f1": 0.60, "exact_match": 0.01}, str(tmp_path / "m4"))
    assert not guard["promoted"] and "guard exact_match" in guard["reason"]
    assert registry.version_by_alias(mlflow_uri, "chat", "champion").version == better["candidate"]["version"]
