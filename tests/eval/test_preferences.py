import json

import pytest

from components.eval.preferences import (
    FeedbackRecord,
    JudgedPair,
    export_preferences,
    read_preferences,
)


def test_feedback_and_judge_verdicts_round_trip(tmp_path):
    fb = [
        FeedbackRecord("tr-1", "What is a list?", "A mutable sequence.", +1, "good"),
        FeedbackRecord("tr-2", "what is a  list?", "A fruit.", -1, "wrong"),
        FeedbackRecord("tr-3", "What is a tuple?", "A fish.", -1, "nonsense"),
    ]
    judged = [JudgedPair("What is a dict?", "A mapping.", "A list.", "a", "tr-4"),
              JudgedPair("What is a set?", "x", "y", "tie", "tr-5")]
    report = export_preferences(fb, tmp_path, judged)
    assert report["num_pairs"] == 2 and report["num_failures"] == 1 and report["num_pairs_from_judge"] == 1
    rows = read_preferences(tmp_path / "preferences.jsonl")
    assert {"prompt": "What is a list?", "chosen": "A mutable sequence.", "rejected": "A fruit."} in rows
    assert {"prompt": "What is a dict?", "chosen": "A mapping.", "rejected": "A list."} in rows
    failures = [json.loads(x) for x in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert failures == [{"prompt": "What is a tuple?", "response": "A fish.", "comment": "nonsense", "trace_id": "tr-3"}]
    prov = [json.loads(x) for x in (tmp_path / "provenance.jsonl").read_text().splitlines()]
    assert prov[0] == {"source": "feedback", "chosen_trace": "tr-1", "rejected_trace": "tr-2"}


def test_bad_thumb_rejected(tmp_path):
    with pytest.raises(ValueError, match="thumb"):
        export_preferences([FeedbackRecord("t", "p", "r", 0)], tmp_path)


def test_feedback_prefs_step(tmp_path):
    from dataclasses import asdict

    from components.eval.config import FeedbackPrefsConfig
    from components.eval.steps import run_feedback_prefs
    from flows.engine.context import StepContext

    log = tmp_path / "fb.jsonl"
    log.write_text("".join(json.dumps(asdict(r)) + "\n" for r in [
        FeedbackRecord("t1", "q", "good", 1), FeedbackRecord("t2", "q", "bad", -1)]))
    ctx = StepContext.for_test(tmp_path / "out")
    metrics = run_feedback_prefs(ctx, FeedbackPrefsConfig(feedback_path=str(log)))
    assert metrics["num_pairs"] == 1.0
    assert read_preferences(ctx.output / "preferences.jsonl") == [{"prompt": "q", "chosen": "good", "rejected": "bad"}]
    with pytest.raises(ValueError, match="min_pairs"):
        run_feedback_prefs(StepContext.for_test(tmp_path / "o2"), FeedbackPrefsConfig(feedback_path=str(log), min_pairs=5))
