"""LLM-as-judge over any OpenAI-compatible endpoint: a 1–5 rubric and position-debiased pairwise.

Pairwise comparisons run twice with the answers swapped. A verdict counts only when both
orders agree; when they disagree the judge preferred a *position*, not an answer, and the
result is a tie (counted as ``position_flip`` so the bias is visible). The combined verdict
is therefore order-independent by construction: ``pairwise(x, y)`` mirrors ``pairwise(y, x)``.
Unparseable replies are ``invalid`` — never a made-up score.
"""
from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from components.eval.config import JudgeConfig
from components.eval.prompt_templates import RUBRIC_CRITERIA
from components.tracking.prompts import PromptRef


class ChatBackend(Protocol):
    def chat(self, prompt: str, max_tokens: int, choices: list[str] | None = None) -> str: ...


class OpenAIChat:
    """Chat completions against ``config.base_url`` (vLLM, our Serve app, OpenAI, …)."""

    def __init__(self, config: JudgeConfig):
        if not config.enabled:
            raise ValueError("judge.base_url is not set: there is no judge endpoint to call")
        import openai

        key = os.environ[config.api_key_env] if config.api_key_env else "EMPTY"
        self.config = config
        self.client = openai.OpenAI(base_url=config.base_url, api_key=key, timeout=config.timeout_s, max_retries=1)

    def chat(self, prompt: str, max_tokens: int, choices: list[str] | None = None) -> str:
        extra = {"structured_outputs": {"choice": choices}} if choices and self.config.constrained_choice else None
        r = self.client.chat.completions.create(
            model=self.config.model, messages=[{"role": "user", "content": prompt}],
            max_tokens=max_tokens, temperature=0.0, extra_body=extra)
        return r.choices[0].message.content or ""


@dataclass
class RubricResult:
    scores: dict[str, int] | None
    raw: str
    prompt_uri: str

    @property
    def valid(self) -> bool:
        return self.scores is not None

    @property
    def overall(self) -> float | None:
        return sum(self.scores.values()) / len(self.scores) if self.scores else None


@dataclass
class PairwiseResult:
    verdict: str          # "a", "b", "tie" or "invalid" — in the caller's order
    first: str | None     # raw label with (a, b) shown as (A, B)
    second: str | None    # raw label with (b, a) shown as (A, B)
    raw: list[str] = field(default_factory=list)
    prompt_uri: str = ""

    @property
    def position_flip(self) -> bool:
        """Both orders picked the same *slot*: the judge followed position, not content."""
        return self.first is not None and self.first == self.second and self.first in ("A", "B")


def parse_rubric(text: str) -> dict[str, int] | None:
    """Scores from a JSON object (or ``name: n`` lines); None unless all four are integers 1–5."""
    found: dict[str, int] = {}
    m = re.search(r"\{.*?\}", text, re.DOTALL)
    if m:
        try:
            obj = json.loads(m.group(0))
            found = {k.lower(): v for k, v in obj.items() if isinstance(v, int) and not isinstance(v, bool)}
        except (json.JSONDecodeError, AttributeError):
            found = {}
    if not all(c in found for c in RUBRIC_CRITERIA):
        for c in RUBRIC_CRITERIA:
            m2 = re.search(rf"{c}\W{{0,3}}\s*([1-5])\b", text, re.IGNORECASE)
            if m2:
                found[c] = int(m2.group(1))
    scores = {c: found[c] for c in RUBRIC_CRITERIA if c in found}
    if len(scores) != len(RUBRIC_CRITERIA) or not all(1 <= v <= 5 for v in scores.values()):
        return None
    return scores


def parse_choice(text: str) -> str | None:
    """First standalone A, B or T in the reply; None if there is none."""
    m = re.search(r"\b([ABT])\b", text.strip().upper())
    return m.group(1) if m else None


class Judge:
    """Rubric and pairwise judging with a backend and the prompt versions it records."""

    def __init__(self, backend: ChatBackend, rubric_prompt: PromptRef, pairwise_prompt: PromptRef,
                 criterion_prompt: PromptRef | None = None, max_tokens: int = 64, constrained: bool = False,
                 max_concurrency: int = 4, groundedness_prompt: PromptRef | None = None):
        self.backend, self.max_tokens, self.constrained = backend, max_tokens, constrained
        self.rubric_prompt, self.pairwise_prompt, self.criterion_prompt = rubric_prompt, pairwise_prompt, criterion_prompt
        self.groundedness_prompt = groundedness_prompt
        if constrained and criterion_prompt is None:
            raise ValueError("constrained judging needs the per-criterion prompt (llmflow-judge-criterion)")
        self.max_concurrency = max_concurrency

    def rubric(self, question: str, answer: str, reference: str = "", context: str = "") -> RubricResult:
        values = {"question": question, "answer": answer, "reference": reference or "(none)",
                  "context": context or "(none)"}
        if self.constrained:
            raws, scores = [], {}
            for c in RUBRIC_CRITERIA:
                raw = self.backend.chat(self.criterion_prompt.format(criterion=c, **values), 2,
                                        choices=["1", "2", "3", "4", "5"])
                raws.append(raw)
                m = re.search(r"[1-5]", raw)
                if m:
                    scores[c] = int(m.group(0))
            ok = len(scores) == len(RUBRIC_CRITERIA)
            return RubricResult(scores if ok else None, " | ".join(raws), self.criterion_prompt.uri)
        raw = self.backend.chat(self.rubric_prompt.format(**values), self.max_tokens)
        return RubricResult(parse_rubric(raw), raw, self.rubric_prompt.uri)

    def groundedness(self, question: str, answer: str, context: str) -> tuple[int | None, str]:
        """1–5: how far the answer's claims are stated in ``context``; None when the reply has no score."""
        if self.groundedness_prompt is None:
            raise ValueError("groundedness judging needs the llmflow-judge-groundedness prompt")
        raw = self.backend.chat(self.groundedness_prompt.format(question=question, answer=answer, context=context),
                                2 if self.constrained else self.max_tokens, choices=["1", "2", "3", "4", "5"])
        m = re.search(r"[1-5]", raw)
        return (int(m.group(0)) if m else None), raw

    def groundedness_many(self, items: list[tuple[str, str, str]]) -> list[tuple[int | None, str]]:
        with ThreadPoolExecutor(self.max_concurrency) as pool:
            return list(pool.map(lambda it: self.groundedness(*it), items))

    def _one_order(self, question: str, a: str, b: str) -> tuple[str | None, str]:
        raw = self.backend.chat(self.pairwise_prompt.format(question=question, answer_a=a, answer_b=b),
                                self.max_tokens, choices=["A", "B", "T"])
        return parse_choice(raw), raw

    def pairwise(self, question: str, a: str, b: str) -> PairwiseResult:
        first, raw1 = self._one_order(question, a, b)
        second, raw2 = self._one_order(question, b, a)
        return PairwiseResult(combine_orders(first, second), first, second, [raw1, raw2], self.pairwise_prompt.uri)

    def rubric_many(self, items: list[dict]) -> list[RubricResult]:
        with ThreadPoolExecutor(self.max_concurrency) as pool:
            return list(pool.map(lambda it: self.rubric(**it), items))

    def pairwise_many(self, items: list[tuple[str, str, str]]) -> list[PairwiseResult]:
        with ThreadPoolExecutor(self.max_concurrency) as pool:
            return list(pool.map(lambda it: self.pairwise(*it), items))


def combine_orders(first: str | None, second: str | None) -> str:
    """Merge the (a,b) and (b,a) labels into a verdict about a vs b."""
    if first is None or second is None:
        return "invalid"
    winner1 = {"A": "a", "B": "b", "T": "tie"}[first]
    winner2 = {"A": "b", "B": "a", "T": "tie"}[second]  # second call showed b in slot A
    return winner1 if winner1 == winner2 else "tie"


def pairwise_summary(results: list[PairwiseResult]) -> dict[str, float]:
    """Win/tie/loss rates for side a, plus how often position decided (the bias we cancelled)."""
    n = len(results)
    if n == 0:
        return {}
    valid = [r for r in results if r.verdict != "invalid"]
    out = {"pairwise_invalid_rate": 1 - len(valid) / n,
           "pairwise_position_flip_rate": sum(r.position_flip for r in results) / n}
    if valid:
        out["pairwise_win_rate"] = sum(r.verdict == "a" for r in valid) / len(valid)
        out["pairwise_tie_rate"] = sum(r.verdict == "tie" for r in valid) / len(valid)
        out["pairwise_loss_rate"] = sum(r.verdict == "b" for r in valid) / len(valid)
    return out


def rubric_summary(results: list[RubricResult]) -> dict[str, float]:
    n = len(results)
    valid = [r for r in results if r.valid]
    out = {"judge_invalid_rate": 1 - len(valid) / n if n else 0.0}
    if valid:
        for c in RUBRIC_CRITERIA:
            out[f"judge_{c}"] = sum(r.scores[c] for r in valid) / len(valid)
        out["judge_overall"] = sum(r.overall for r in valid) / len(valid)
    return out


def build_judge(config: JudgeConfig, prompts: dict[str, PromptRef], backend: ChatBackend | None = None) -> Judge:
    return Judge(backend or OpenAIChat(config), prompts["llmflow-judge-rubric"], prompts["llmflow-judge-pairwise"],
                 prompts.get("llmflow-judge-criterion"), max_tokens=config.max_tokens,
                 constrained=config.constrained_choice, max_concurrency=config.max_concurrency,
                 groundedness_prompt=prompts.get("llmflow-judge-groundedness"))
