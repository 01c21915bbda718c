"""Reference-based text metrics: exact match and token F1 (SQuAD rules), BLEU, ROUGE, and how
often grounded answers copy a span of their source.

EM/F1 follow the SQuAD v1.1 evaluation script's normalisation (lower-case, strip
punctuation and English articles, collapse whitespace) so numbers are comparable.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

from components.grounded import longest_common_span_words

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = Counter(pred) & Counter(ref)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def source_span_rate(answers: Sequence[str], sources: Sequence[str], min_words: int = 5) -> float:
    """Share of answers holding a run of at least ``min_words`` consecutive words of their source.

    The grounded-answer check of issue 16: a small model that copies from its sources passes it,
    one that writes fluent text of its own (or nothing) does not.
    """
    if len(answers) != len(sources):
        raise ValueError(f"{len(answers)} answers vs {len(sources)} sources: they must align")
    if not answers:
        raise ValueError("no answers to score")
    return sum(longest_common_span_words(a, s) >= min_words for a, s in zip(answers, sources)) / len(answers)


def corpus_bleu(predictions: list[str], references: list[str]) -> float:
    """sacrebleu corpus BLEU (0–100), one reference per prediction."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(predictions, [references]).score)


def rouge(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure over pairs (rouge-score, Porter stemming)."""
    from rouge_score import rouge_scorer

    kinds = ["rouge1", "rouge2", "rougeL"]
    scorer = rouge_scorer.RougeScorer(kinds, use_stemmer=True)
    totals = dict.fromkeys(kinds, 0.0)
    for p, r in zip(predictions, references, strict=True):
        for k, s in scorer.score(r, p).items():
            totals[k] += s.fmeasure
    n = max(len(predictions), 1)
    return {k: v / n for k, v in totals.items()}


def qa_metrics(predictions: list[str], references: list[str]) -> dict[str, float]:
    """EM, F1, BLEU and ROUGE for aligned prediction/reference lists."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions vs {len(references)} references: they must align")
    if not predictions:
        raise ValueError("no predictions to score: the eval set is empty")
    n = len(predictions)
    out = {
        "exact_match": sum(exact_match(p, r) for p, r in zip(predictions, references)) / n,
        "f1": sum(token_f1(p, r) for p, r in zip(predictions, references)) / n,
        "bleu": corpus_bleu(predictions, references),
    }
    out.update(rouge(predictions, references))
    return out
