"""Position-debiased pairwise judging with a deterministic fake judge that HAS position bias."""
import re

import pytest

from components.eval.judge import (
    Judge,
    combine_orders,
    pairwise_summary,
    parse_choice,
    parse_rubric,
)
from components.eval.prompt_templates import TEMPLATES
from components.tracking.prompts import PromptRef

PROMPTS = {n: PromptRef(n, 0, t) for n, t in TEMPLATES.items()}
FACTS = {"list", "mutable", "sequence", "ordered"}


class BiasedFakeJudge:
    """Prefers the answer mentioning more facts, but when they are within 1 fact it always says "A"
    (a strong position bias, like small real judges). Rubric: scores from fact count."""

    def chat(self, prompt: str, max_tokens: int, choices=None) -> str:
        if "Answer A:" in prompt:
            a = re.search(r"Answer A: (.*)\n\nAnswer B:", prompt, re.DOTALL).group(1)
            b = re.search(r"Answer B: (.*)\n\nReply", prompt, re.DOTALL).group(1)
            fa, fb = (len(FACTS & set(x.lower().split())) for x in (a, b))
            if abs(fa - fb) <= 1:
                return "A"
            return "A" if fa > fb else "B"
        ans = re.search(r"\nAnswer: (.*)\n\nReply", prompt, re.DOTALL).group(1)
        s = 1 + min(4, len(FACTS & set(ans.lower().split())))
        return f'{{"relevance": {s}, "accuracy": {s}, "completeness": {s}, "clarity": 5}}'


CRAFTED = [  # (question, x, y)
    ("What is a list?", "a list is an ordered mutable sequence", "no idea"),          # x clearly better
    ("What is a list?", "a list is mutable", "a list is a sequence"),                  # near tie → bias
    ("What is a list?", "blah", "an ordered mutable sequence list"),                   # y clearly better
    ("What is a list?", "same words here", "same words here"),
]
MIRROR = {"a": "b", "b": "a", "tie": "tie", "invalid": "invalid"}


def make_judge():
    return Judge(BiasedFakeJudge(), PROMPTS["llmflow-judge-rubric"], PROMPTS["llmflow-judge-pairwise"],
                 PROMPTS["llmflow-judge-criterion"])


def test_both_orders_cancel_position_bias():
    judge = make_judge()
    for q, x, y in CRAFTED:
        xy, yx = judge.pairwise(q, x, y), judge.pairwise(q, y, x)
        assert xy.verdict == MIRROR[yx.verdict], (x, y, xy, yx)
    # the single-order judge is NOT order independent on the near-tie pair: the bias was real
    near = judge.pairwise(*CRAFTED[1])
    assert near.first == near.second == "A" and near.position_flip and near.verdict == "tie"
    assert judge.pairwise(*CRAFTED[0]).verdict == "a"
    assert judge.pairwise(*CRAFTED[2]).verdict == "b"


def test_pairwise_summary_counts_position_flips():
    judge = make_judge()
    s = pairwise_summary(judge.pairwise_many(CRAFTED))
    assert s["pairwise_position_flip_rate"] == pytest.approx(2 / 4)  # near tie + identical answers
    assert s["pairwise_win_rate"] == pytest.approx(1 / 4) and s["pairwise_loss_rate"] == pytest.approx(1 / 4)


def test_rubric_scores_and_prompt_version_recorded():
    r = make_judge().rubric("What is a list?", "an ordered mutable sequence", reference="list")
    assert r.valid and r.scores["relevance"] == 4 and r.overall == pytest.approx((4 * 3 + 5) / 4)
    assert r.prompt_uri == "prompts:/llmflow-judge-rubric/0"


def test_unparseable_replies_are_invalid_not_scored():
    assert parse_rubric("I think it is pretty good") is None
    assert parse_rubric('{"relevance": 9, "accuracy": 3, "completeness": 3, "clarity": 3}') is None
    assert parse_rubric("Relevance: 4\nAccuracy: 2\nCompleteness: 3\nClarity: 5") == \
        {"relevance": 4, "accuracy": 2, "completeness": 3, "clarity": 5}
    assert parse_choice("hmm, maybe") is None and parse_choice("B.") == "B"
    assert combine_orders(None, "A") == "invalid"
