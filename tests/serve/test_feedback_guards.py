"""Guards on feedback, on the online evaluator itself (a real sqlite MLflow store, no server):
votes only on requests this stack served, one vote per request and voter, PII out of traces and pairs."""
from __future__ import annotations

import time

import pytest

from components.artifacts import read_preferences
from serve.online_eval.app import voter_of
from serve.online_eval.config import OnlineEvalConfig
from serve.online_eval.evaluator import OnlineEvaluator, RequestRecord

EMAIL, PHONE = "jane.doe@example.com", "415-555-0134"


@pytest.fixture
def evaluator(mlflow_uri, tmp_path):
    ev = OnlineEvaluator(OnlineEvalConfig(tracking_uri=mlflow_uri, embed_queries=False, sample_rate=1.0,
                                          judge_rate=0.0, feedback_path=str(tmp_path / "fb.jsonl")))
    yield ev
    ev.close(timeout_s=30)


def served(ev: OnlineEvaluator, rid: str, query: str, response: str) -> None:
    now = time.time_ns()
    ev.submit(RequestRecord(request_id=rid, query=query, response=response, start_time_ns=now - 1_000_000,
                            end_time_ns=now))


def test_votes_only_on_requests_this_stack_served(evaluator, mlflow_uri):
    from components.tracking.traces import TraceLogger

    served(evaluator, "r-1", "What is a tuple?", "An immutable sequence.")
    evaluator.flush()
    assert evaluator.feedback(1, request_id="r-1", user="key:a").startswith("tr-")
    with pytest.raises(KeyError, match="never submitted"):
        evaluator.feedback(1, request_id="chatcmpl-made-up", user="key:a")
    other = TraceLogger(mlflow_uri, "someone-elses-experiment")
    foreign = other.log_request(inputs={"query": "q"}, outputs={"response": "r"}, start_time_ns=1, end_time_ns=2,
                                attributes={}, tags={"llmflow.request_id": "x"})
    untagged = evaluator.traces.log_request(inputs={"query": "q"}, outputs={"response": "r"}, start_time_ns=1,
                                            end_time_ns=2, attributes={}, tags={})
    for trace_id in (foreign, untagged, "tr-00000000000000000000000000000000"):
        with pytest.raises(KeyError):
            evaluator.feedback(-1, trace_id=trace_id, user="key:a")


def test_one_vote_per_request_and_voter_a_repeat_replaces_it(evaluator, tmp_path):
    served(evaluator, "r-1", "What is a set?", "An unordered collection.")
    served(evaluator, "r-2", "What is a set?", "A kind of list.")
    evaluator.flush()
    for thumb in (1, -1, 1, 1):  # one voter changing their mind on r-1, then repeating
        evaluator.feedback(thumb, request_id="r-1", user="key:a")
    evaluator.feedback(-1, request_id="r-2", user="key:a")
    evaluator.feedback(-1, request_id="r-2", user="key:a")
    assert evaluator.arms["primary"].thumbs == {"up": 1, "down": 1}
    report = evaluator.export_preferences(tmp_path / "prefs")
    assert report["num_pairs"] == 1
    [row] = read_preferences(tmp_path / "prefs")
    assert (row.chosen, row.rejected) == ("An unordered collection.", "A kind of list.")


def test_pii_is_scrubbed_before_traces_logs_and_pairs_and_pairs_keep_the_served_chat(evaluator, tmp_path):
    """The router serves a grounded chat (sources + question): the feedback log, the trace and the exported
    pair keep that chat, the prompt the answers were given, scrubbed; by request id and by trace id alike."""
    grounded = [{"role": "system", "content": "Answer from the sources."},
                {"role": "user", "content": f"[1] Write to {EMAIL}. A dict maps keys.\n\nQuestion: what is a dict?"}]
    for rid, answer in (("r-1", f"Call {PHONE}: a mapping."), ("r-2", "A list.")):
        now = time.time_ns()
        evaluator.submit(RequestRecord(request_id=rid, query=f"I am {EMAIL}: what is a dict?", response=answer,
                                       start_time_ns=now - 1_000_000, end_time_ns=now, served_messages=grounded))
    evaluator.flush()
    up = evaluator.feedback(1, comment=f"thanks, {EMAIL}", request_id="r-1", user="key:a")
    down = evaluator._traced["r-2"][0]
    evaluator._traced.clear()  # as if the recent buffer rolled over: the vote reads the stored trace back
    evaluator.feedback(-1, comment=f"call me on {PHONE}", trace_id=down, user="key:a")
    evaluator.export_preferences(tmp_path / "prefs")
    stored = [evaluator.traces.get_trace_json(up), (tmp_path / "fb.jsonl").read_text(),
              *(p.read_text() for p in (tmp_path / "prefs").iterdir() if p.is_file())]
    for text in stored:
        assert EMAIL not in text and PHONE not in text
    assert "<EMAIL>" in (tmp_path / "prefs" / "preferences.jsonl").read_text()
    [row] = read_preferences(tmp_path / "prefs")
    assert row.messages == [grounded[0], {"role": "user", "content": grounded[1]["content"].replace(EMAIL, "<EMAIL>")}]
    assert (row.chosen, row.rejected) == ("Call <PHONE>: a mapping.", "A list.")


def test_the_voter_is_the_key_holder_never_the_key():
    a, b = voter_of("Bearer key-one", True), voter_of("Bearer key-two", True)
    assert a.startswith("key:") and a != b and "key-one" not in a
    assert voter_of("Bearer key-one", True) == a
    assert voter_of(None, False) == "anonymous"


def test_a_vote_before_the_record_arrives_waits_for_it(evaluator):
    """Shadow mode: the user has the answer while the candidate's copy still runs; the vote must not 404."""
    import threading

    evaluator.expect("r-late")
    got = {}
    voter = threading.Thread(target=lambda: got.update(trace=evaluator.feedback(1, request_id="r-late", user="key:a")))
    voter.start()
    time.sleep(0.5)
    assert voter.is_alive()  # waiting, not failed
    now = time.time_ns()
    evaluator.submit(RequestRecord(request_id="r-late", query="q?", response="a.", start_time_ns=now - 1,
                                   end_time_ns=now), shadow_response="b.")
    voter.join(30)
    assert got["trace"].startswith("tr-")

