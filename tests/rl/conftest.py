"""Session fixtures for post-training tests: a tiny LM that has learned something (built once per session)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def prefs_dir(tmp_path_factory) -> Path:
    """A ``prefs`` artifact made by the real export (``eval.feedback_prefs`` with its defaults) from logs shaped
    as the online loop writes them: thumbs up on a bare number and down on hedging prose to the same prompt,
    plus judged shadow pairs in which the number won."""
    import json
    import random
    from dataclasses import asdict

    from components.eval.config import FeedbackPrefsConfig
    from components.eval.preferences import FeedbackRecord, JudgedPair
    from components.eval.steps import run_feedback_prefs
    from components.sft.dataset import arithmetic_prompts
    from flows.engine.context import StepContext

    rng = random.Random(0)
    hedges = ["I am not sure about that.", "Let me think about it for a while.", "That is a hard question to answer.",
              "Numbers are not my strength, sorry.", "It depends on the context."]
    prompts = arithmetic_prompts(80, 20, seed=1)
    feedback, judged = [], []
    for i, r in enumerate(prompts[:64]):
        feedback += [FeedbackRecord(f"tr-{i}-up", r["prompt"], r["answer"], +1, user=f"u{i % 5}"),
                     FeedbackRecord(f"tr-{i}-down", r["prompt"], rng.choice(hedges), -1, "vague", user=f"u{i % 7}")]
    for i, r in enumerate(prompts[64:]):
        judged.append(JudgedPair(r["prompt"], rng.choice(hedges), r["answer"], "b", f"tr-shadow-{i}"))
    logs = tmp_path_factory.mktemp("online")
    for name, records in (("feedback.jsonl", feedback), ("feedback_judged_pairs.jsonl", judged)):
        (logs / name).write_text("".join(json.dumps(asdict(x)) + "\n" for x in records))
    ctx = StepContext.for_test(tmp_path_factory.mktemp("prefs"))
    report = run_feedback_prefs(ctx, FeedbackPrefsConfig(feedback_path=str(logs / "feedback.jsonl")))
    assert report["num_pairs"] == 80 and report["num_pairs_from_judge"] == 16, report
    return ctx.output


@pytest.fixture(scope="session")
def prompts_dir(tmp_path_factory) -> Path:
    """prompts.jsonl with checkable arithmetic answers (as sft.dataset writes it)."""
    from components.sft.dataset import arithmetic_prompts, write_jsonl

    out = tmp_path_factory.mktemp("grpo_data")
    write_jsonl(out / "prompts.jsonl", arithmetic_prompts(128, 20, seed=2))
    return out
