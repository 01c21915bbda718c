from components.eval.config import GateConfig
from components.eval.gate import decide


def test_first_model_becomes_champion():
    ok, reason = decide({"f1": 0.2}, None, GateConfig())
    assert ok and "first" in reason


def test_better_promoted_worse_refused_with_reason():
    cfg = GateConfig(metric="f1", min_delta=0.01)
    assert decide({"f1": 0.30}, {"f1": 0.20}, cfg)[0]
    ok, reason = decide({"f1": 0.205}, {"f1": 0.20}, cfg)
    assert not ok and "does not beat" in reason


def test_lower_is_better_and_guards():
    cfg = GateConfig(metric="perplexity", guard_metrics={"exact_match": 0.02})
    assert decide({"perplexity": 10.0, "exact_match": 0.5}, {"perplexity": 12.0, "exact_match": 0.5}, cfg)[0]
    ok, reason = decide({"perplexity": 10.0, "exact_match": 0.3}, {"perplexity": 12.0, "exact_match": 0.5}, cfg)
    assert not ok and "guard exact_match" in reason
    ok, reason = decide({"f1": 1.0}, {"f1": 0.0}, GateConfig(metric="judge_overall"))
    assert not ok and "judge" in reason
