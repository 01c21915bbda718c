import json

import pytest

from components.artifacts import read_preferences
from components.eval.preferences import FeedbackRecord, JudgedPair, export_preferences


def pairs(prefs) -> list[dict]:
    return [row.pair() for row in read_preferences(prefs)]


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
    fed, judge = read_preferences(tmp_path)  # the prefs artifact rl.dpo / rl.reward_model read by default
    assert fed.pair() == {"prompt": "What is a list?", "chosen": "A mutable sequence.", "rejected": "A fruit."}
    assert (fed.source, fed.trace_ids, fed.verdict) == ("feedback", ["tr-1", "tr-2"], None)
    assert judge.pair() == {"prompt": "What is a dict?", "chosen": "A mapping.", "rejected": "A list."}
    assert (judge.source, judge.trace_ids, judge.verdict) == ("judge", ["tr-4"], "a")
    assert fed.created_at and fed.created_at == judge.created_at
    failures = [json.loads(x) for x in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert failures == [{"prompt": "What is a tuple?", "response": "A fish.", "comment": "nonsense", "trace_id": "tr-3"}]


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
    assert pairs(ctx.output) == [{"prompt": "q", "chosen": "good", "rejected": "bad"}]
    with pytest.raises(ValueError, match="min_pairs"):
        run_feedback_prefs(StepContext.for_test(tmp_path / "o2"), FeedbackPrefsConfig(feedback_path=str(log), min_pairs=5))


def test_two_votes_on_one_request_make_one_pair(tmp_path):
    # the same user votes twice on each request: the second vote replaces the first
    fb = [FeedbackRecord("tr-a", "q", "good", +1), FeedbackRecord("tr-b", "q", "bad", -1),
          FeedbackRecord("tr-a", "q", "good", +1), FeedbackRecord("tr-b", "q", "bad", -1)]
    assert export_preferences(fb, tmp_path)["num_pairs"] == 1
    assert pairs(tmp_path) == [{"prompt": "q", "chosen": "good", "rejected": "bad"}]
    # a flipped vote counts as the flip, not as both opinions: two ups make no pair
    flipped = fb[:2] + [FeedbackRecord("tr-b", "q", "bad", +1)]
    assert export_preferences(flipped, tmp_path / "f")["num_pairs"] == 0


def test_votes_are_per_user_and_a_request_joins_one_pair(tmp_path):
    from components.eval.preferences import build_pairs, label_requests

    fb = [FeedbackRecord("tr-a", "q", "A", +1, user="u1"), FeedbackRecord("tr-a", "q", "A", -1, user="u2"),
          FeedbackRecord("tr-b", "q", "B", +1, user="u1"), FeedbackRecord("tr-c", "q", "C", -1, user="u1"),
          FeedbackRecord("tr-d", "q", "D", -1, user="u1"), FeedbackRecord("tr-c", "q", "C", -1, user="u2")]
    labels = {r.trace_id: r.thumb for r in label_requests(fb)}
    assert labels == {"tr-b": 1, "tr-c": -1, "tr-d": -1}  # tr-a: u1 up, u2 down cancel out
    rows, failures = build_pairs(fb)
    assert [r.pair() for r in rows] == [{"prompt": "q", "chosen": "B", "rejected": "C"}]  # B is in one pair, not two
    assert [f["trace_id"] for f in failures] == ["tr-d"]  # the unpaired thumbs-down is a failure to fix
