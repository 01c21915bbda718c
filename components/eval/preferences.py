"""Close the loop: user feedback and judge verdicts → a preference dataset for ``rl.dpo``.

Layout written by ``export_preferences(records, out_dir)`` (the ``prefs`` artifact):
  preferences.jsonl  prompt/chosen/rejected (+ messages: the chat the model answered) + provenance
                     (source, trace ids, verdict): the one
                     format of ``components.artifacts``, which rl.dpo and rl.reward_model read
  failures.jsonl     {"prompt", "response", "comment", "trace_id"} — thumbs-down answers with no
                     better answer to pair with (for SFT fixes / GRPO prompts)
  report.json        counts
Pairs come from (a) a thumbs-up and a thumbs-down answer to the same prompt, and
(b) shadow/A-B comparisons where the position-debiased judge picked a winner.

Votes are not additive: a user's later vote on a request replaces their earlier one, a request's
label is the sign of its users' votes (a tie: no label), and each request joins at most one
pair. Feedback becomes training data, so repeating or flipping votes must not let one request
weigh more than one pair.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from components.artifacts import PreferenceRow, write_preferences


@dataclass
class FeedbackRecord:
    trace_id: str
    prompt: str          # redacted prompt, as stored in the trace
    response: str        # redacted response
    thumb: int           # +1 up, -1 down
    comment: str = ""
    arm: str = "primary"
    user: str = "user"   # who voted: one vote per (trace_id, user), the last one counts
    messages: list[dict] | None = None  # the redacted chat the model answered (the router's grounded prompt)


@dataclass
class JudgedPair:
    prompt: str
    answer_a: str
    answer_b: str
    verdict: str         # "a", "b", "tie", "invalid" — from judge.combine_orders
    trace_id: str = ""
    messages: list[dict] | None = None  # the chat both answered (the router's served prompt)


def _key(r: FeedbackRecord) -> str:
    """Answers pair only when the model saw the same prompt: the question, and the served chat when known
    (the same question with other sources is another prompt)."""
    served = json.dumps(r.messages, sort_keys=True, ensure_ascii=False) if r.messages is not None else ""
    return " ".join(r.prompt.split()).lower() + "\x00" + served


def label_requests(feedback: list[FeedbackRecord]) -> list[FeedbackRecord]:
    """One record per request (trace), in order of its first vote: the last vote of each user counts,
    and the request's thumb is the sign of their sum; requests whose votes cancel out are left out."""
    first_vote: dict[str, int] = {}
    last: dict[tuple[str, str], FeedbackRecord] = {}
    for i, r in enumerate(feedback):
        if r.thumb not in (1, -1):
            raise ValueError(f"feedback thumb must be +1 or -1, got {r.thumb!r} (trace {r.trace_id})")
        first_vote.setdefault(r.trace_id, i)
        last[(r.trace_id, r.user)] = r
    by_trace: dict[str, list[FeedbackRecord]] = {}
    for (trace_id, _), r in last.items():
        by_trace.setdefault(trace_id, []).append(r)
    labelled = []
    for trace_id in sorted(by_trace, key=first_vote.__getitem__):
        votes = by_trace[trace_id]
        total = sum(v.thumb for v in votes)
        if total:
            labelled.append(replace(votes[0], thumb=1 if total > 0 else -1,
                                    comment=" | ".join(v.comment for v in votes if v.comment)))
    return labelled


def build_pairs(feedback: list[FeedbackRecord], judged: list[JudgedPair] = (),
                created_at: str | None = None) -> tuple[list[PreferenceRow], list[dict]]:
    """Returns (preference rows, failures)."""
    by_prompt: dict[str, dict[str, list[FeedbackRecord]]] = {}
    for r in label_requests(feedback):
        by_prompt.setdefault(_key(r), {"up": [], "down": []})["up" if r.thumb > 0 else "down"].append(r)
    rows, failures = [], []
    for group in by_prompt.values():
        downs = list(group["down"])
        for up in group["up"]:  # each request in at most one pair: match ups and downs one to one
            down = next((d for d in downs if d.response != up.response), None)
            if down is None:
                continue
            downs.remove(down)
            rows.append(PreferenceRow(prompt=up.prompt, chosen=up.response, rejected=down.response, source="feedback",
                                      trace_ids=[up.trace_id, down.trace_id], messages=up.messages,
                                      created_at=created_at))
        failures += [{"prompt": d.prompt, "response": d.response, "comment": d.comment, "trace_id": d.trace_id}
                     for d in downs]
    for j in judged:
        if j.verdict not in ("a", "b") or j.answer_a == j.answer_b:
            continue
        chosen, rejected = (j.answer_a, j.answer_b) if j.verdict == "a" else (j.answer_b, j.answer_a)
        rows.append(PreferenceRow(prompt=j.prompt, chosen=chosen, rejected=rejected, source="judge",
                                  trace_ids=[j.trace_id] if j.trace_id else [], verdict=j.verdict,
                                  messages=j.messages, created_at=created_at))
    return rows, failures


def export_preferences(feedback: list[FeedbackRecord], out_dir: str | Path,
                       judged: list[JudgedPair] = ()) -> dict[str, int]:
    out = Path(out_dir)
    judged = list(judged)
    rows, failures = build_pairs(feedback, judged, created_at=datetime.now(UTC).isoformat(timespec="seconds"))
    write_preferences(out, rows)
    with open(out / "failures.jsonl", "w") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in failures)
    report = {"num_pairs": len(rows), "num_failures": len(failures), "num_feedback": len(feedback),
              "num_judged": len(judged), "num_pairs_from_judge": sum(r.source == "judge" for r in rows)}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def feedback_to_dict(r: FeedbackRecord) -> dict:
    return asdict(r)
