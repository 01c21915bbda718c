"""Close the loop: user feedback and judge verdicts → a preference dataset for ``rl.dpo``.

Layout written by ``export_preferences(records, out_dir)`` (the ``prefs`` artifact):
  preferences.jsonl  {"prompt", "chosen", "rejected"}  — exactly what rl.dpo reads
  provenance.jsonl   one line per pair: which trace ids / verdict produced it
  failures.jsonl     {"prompt", "response", "comment", "trace_id"} — thumbs-down answers with no
                     better answer to pair with (for SFT fixes / GRPO prompts)
  report.json        counts
Pairs come from (a) a thumbs-up and a thumbs-down answer to the same prompt, and
(b) shadow/A-B comparisons where the position-debiased judge picked a winner.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path


@dataclass
class FeedbackRecord:
    trace_id: str
    prompt: str          # redacted prompt, as stored in the trace
    response: str        # redacted response
    thumb: int           # +1 up, -1 down
    comment: str = ""
    arm: str = "primary"


@dataclass
class JudgedPair:
    prompt: str
    answer_a: str
    answer_b: str
    verdict: str         # "a", "b", "tie", "invalid" — from judge.combine_orders
    trace_id: str = ""


def _key(prompt: str) -> str:
    return " ".join(prompt.split()).lower()


def build_pairs(feedback: list[FeedbackRecord], judged: list[JudgedPair] = ()) -> tuple[list[dict], list[dict], list[dict]]:
    """Returns (pairs, provenance, failures)."""
    by_prompt: dict[str, dict[str, list[FeedbackRecord]]] = {}
    for r in feedback:
        if r.thumb not in (1, -1):
            raise ValueError(f"feedback thumb must be +1 or -1, got {r.thumb!r} (trace {r.trace_id})")
        by_prompt.setdefault(_key(r.prompt), {"up": [], "down": []})["up" if r.thumb > 0 else "down"].append(r)
    pairs, prov, failures, seen = [], [], [], set()
    for group in by_prompt.values():
        for up, down in product(group["up"], group["down"]):
            if up.response == down.response or (up.prompt, up.response, down.response) in seen:
                continue
            seen.add((up.prompt, up.response, down.response))
            pairs.append({"prompt": up.prompt, "chosen": up.response, "rejected": down.response})
            prov.append({"source": "feedback", "chosen_trace": up.trace_id, "rejected_trace": down.trace_id})
        if not group["up"]:
            failures += [{"prompt": d.prompt, "response": d.response, "comment": d.comment, "trace_id": d.trace_id}
                         for d in group["down"]]
    for j in judged:
        if j.verdict not in ("a", "b") or j.answer_a == j.answer_b:
            continue
        chosen, rejected = (j.answer_a, j.answer_b) if j.verdict == "a" else (j.answer_b, j.answer_a)
        pairs.append({"prompt": j.prompt, "chosen": chosen, "rejected": rejected})
        prov.append({"source": "judge", "trace_id": j.trace_id, "verdict": j.verdict})
    return pairs, prov, failures


def export_preferences(feedback: list[FeedbackRecord], out_dir: str | Path,
                       judged: list[JudgedPair] = ()) -> dict[str, int]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs, prov, failures = build_pairs(feedback, list(judged))
    for name, rows in (("preferences.jsonl", pairs), ("provenance.jsonl", prov), ("failures.jsonl", failures)):
        with open(out / name, "w") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    report = {"num_pairs": len(pairs), "num_failures": len(failures), "num_feedback": len(feedback),
              "num_judged": len(list(judged)), "num_pairs_from_judge": sum(p["source"] == "judge" for p in prov)}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def read_preferences(path: str | Path) -> list[dict]:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    for i, r in enumerate(rows):
        if set(r) != {"prompt", "chosen", "rejected"}:
            raise ValueError(f"{path}:{i + 1}: a preference row needs exactly prompt/chosen/rejected, got {sorted(r)}")
    return rows


def feedback_to_dict(r: FeedbackRecord) -> dict:
    return asdict(r)
