"""The judge against a real OpenAI-compatible HTTP endpoint serving a real (tiny) model."""
import pytest

from components.eval.config import JudgeConfig
from components.eval.judge import build_judge, parse_rubric
from components.eval.prompt_templates import TEMPLATES
from components.tracking.prompts import PromptRef

pytestmark = pytest.mark.integration
PROMPTS = {n: PromptRef(n, 0, t) for n, t in TEMPLATES.items()}
PAIRS = [
    ("What is a list?", "A list is an ordered, mutable sequence.", "I do not know."),
    ("How do I open a file?", "Use open(path) in a with block.", "Files are opened."),
    ("What is a tuple?", "An immutable sequence.", "An immutable sequence."),
]
MIRROR = {"a": "b", "b": "a", "tie": "tie", "invalid": "invalid"}


def test_swapped_pairs_give_mirrored_verdicts(judge_url):
    judge = build_judge(JudgeConfig(base_url=judge_url, model="tiny", constrained_choice=True), PROMPTS)
    for q, x, y in PAIRS:
        xy, yx = judge.pairwise(q, x, y), judge.pairwise(q, y, x)
        assert xy.first in "ABT" and xy.second in "ABT"  # constrained decoding: always a label
        assert xy.verdict == MIRROR[yx.verdict]
        assert (xy.first, xy.second) == (yx.second, yx.first)  # the same two calls, swapped
        if xy.position_flip:
            assert xy.verdict == "tie"  # a judge that only follows position never decides


def test_rubric_from_real_endpoint_is_valid_or_marked_invalid(judge_url):
    constrained = build_judge(JudgeConfig(base_url=judge_url, model="tiny", constrained_choice=True), PROMPTS)
    r = constrained.rubric("What is a list?", "An ordered mutable sequence.")
    assert r.valid and all(1 <= v <= 5 for v in r.scores.values())
    free = build_judge(JudgeConfig(base_url=judge_url, model="tiny", max_tokens=16), PROMPTS)
    r2 = free.rubric("What is a list?", "An ordered mutable sequence.")
    assert r2.raw is not None and r2.scores == parse_rubric(r2.raw)  # never a score the reply did not give
