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


def test_pairs_keep_the_served_prompt_and_pair_only_answers_to_the_same_one(tmp_path):
    """An answer is judged against the prompt the model saw (the router's grounded chat): two answers to the
    same question pair only when they were served the same chat, and the pair carries that chat."""
    grounded = [{"role": "user", "content": "Sources: [1] lists are mutable.\n\nQuestion: What is a list?"}]
    other = [{"role": "user", "content": "Sources: [1] tuples are fixed.\n\nQuestion: What is a list?"}]
    fb = [FeedbackRecord("tr-1", "What is a list?", "Mutable.", +1, messages=grounded),
          FeedbackRecord("tr-2", "What is a list?", "A fruit.", -1, messages=other),   # other sources: no pair
          FeedbackRecord("tr-3", "What is a list?", "A fish.", -1, messages=grounded)]
    judged = [JudgedPair("What is a list?", "A list.", "Mutable.", "b", "tr-4", messages=grounded)]
    assert export_preferences(fb, tmp_path, judged)["num_pairs"] == 2
    fed, judge = read_preferences(tmp_path)
    assert fed.pair() == {"prompt": "What is a list?", "chosen": "Mutable.", "rejected": "A fish.", "messages": grounded}
    assert fed.trace_ids == ["tr-1", "tr-3"]
    assert judge.messages == grounded and (judge.chosen, judge.rejected) == ("Mutable.", "A list.")
    # Logs written before the served prompt was recorded still export (the question is the prompt).
    old = [{"trace_id": "tr-5", "prompt": "q", "response": "a", "thumb": 1},
           {"trace_id": "tr-6", "prompt": "q", "response": "b", "thumb": -1}]
    assert export_preferences([FeedbackRecord(**r) for r in old], tmp_path / "old")["num_pairs"] == 1
    assert pairs(tmp_path / "old") == [{"prompt": "q", "chosen": "a", "rejected": "b"}]
