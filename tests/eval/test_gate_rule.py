from components.eval.config import GateConfig
from components.eval.gate import decide


def test_first_model_becomes_champion_when_it_clears_the_floor_and_beats_its_base():
    ok, reason = decide({"f1": 0.2}, None, GateConfig(), base={"f1": 0.1})
    assert ok and "becomes champion" in reason and "base model 0.1000" in reason


def test_first_model_with_f1_zero_is_never_promoted():
    ok, reason = decide({"f1": 0.0}, None, GateConfig())
    assert not ok and "floor 0.0" in reason and "gate.floor" in reason
    ok, reason = decide({"f1": 0.3}, None, GateConfig(floor=0.4))
    assert not ok and "floor 0.4" in reason


def test_first_model_that_does_not_beat_its_base_is_not_promoted():
    ok, reason = decide({"f1": 0.2}, None, GateConfig(min_delta=0.01), base={"f1": 0.195})
    assert not ok and "base model's 0.1950" in reason and "adds nothing" in reason


def test_lower_is_better_first_model_has_no_default_floor():
    assert GateConfig(metric="perplexity").effective_floor is None
    assert decide({"perplexity": 30.0}, None, GateConfig(metric="perplexity"), base={"perplexity": 40.0})[0]
    assert not decide({"perplexity": 45.0}, None, GateConfig(metric="perplexity"), base={"perplexity": 40.0})[0]


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
