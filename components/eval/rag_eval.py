"""Offline RAG groundedness: answer each eval question from the sources the index returns — the
router's retrieval and prompt template — then score what came back.

  rag_retrieval_hit        share of questions whose source document is among the retrieved sources
  rag_groundedness         share of the answer's content words found in its sources (the online
                           loop's lexical heuristic), mean over all answers; an empty one scores 0
  rag_answered             share of non-empty answers
  rag_f1 / rag_exact_match the grounded answers against the reference answers
  rag_source_span_rate     share of answers that quote a source: a run of >= SPAN_WORDS words in a row
                           that one of its sources also has (copying is what a small model can learn)
  rag_judge_groundedness   1–5 from the judge (prompt llmflow-judge-groundedness), when one is set
"""
from __future__ import annotations

from pathlib import Path

from components.eval.config import RagEvalConfig
from components.eval.heuristics import groundedness, longest_shared_span
from components.eval.text_metrics import exact_match, token_f1
from components.rag.retriever import Source

SPAN_WORDS = 5


def retrieve_all(index_dir: Path, questions: list[str], config: RagEvalConfig) -> list[list[Source]]:
    from components.rag.embed import shared_embedder
    from components.rag.retriever import Retriever, open_index

    embedder = shared_embedder()
    vectors = embedder.embed(questions)
    with open_index(index_dir) as store:
        retriever = Retriever(store, embedder, config.retrieval)
        return [retriever.search(q, vector=v) for q, v in zip(questions, vectors)]


def context_of(sources: list[Source], max_source_chars: int) -> str:
    return "\n\n".join(s.text[:max_source_chars] for s in sources)


def grounded_prompts(questions: list[str], sources: list[list[Source]], max_source_chars: int) -> list[str]:
    from components.rag.routing import grounded_prompt

    return [grounded_prompt(q, s, max_source_chars) for q, s in zip(questions, sources)]


def score_rag(rows: list[dict], preds: list[str], sources: list[list[Source]], max_source_chars: int,
              judge=None) -> tuple[dict[str, float], list[dict]]:
    """Metrics over all rows, and one record per row for results.jsonl."""
    contexts = [context_of(s, max_source_chars) for s in sources]
    per_row = []
    for r, p, s, c in zip(rows, preds, sources, contexts):
        per_row.append({"rag_prediction": p, "rag_source_ids": [x.doc_id for x in s],
                        "rag_hit": r.get("source_id") in {x.doc_id for x in s},
                        "rag_groundedness": groundedness(p, c), "rag_f1": token_f1(p, r["answer"]),
                        "rag_source_span": longest_shared_span(p, [x.text[:max_source_chars] for x in s]),
                        "rag_exact_match": exact_match(p, r["answer"])})
    n = len(per_row)
    grounded = [x["rag_groundedness"] for x in per_row if x["rag_groundedness"] is not None]
    metrics = {"rag_retrieval_hit": sum(x["rag_hit"] for x in per_row) / n,
               "rag_answered": len(grounded) / n,
               "rag_groundedness": sum(grounded) / n,
               "rag_f1": sum(x["rag_f1"] for x in per_row) / n,
               "rag_source_span_rate": sum(x["rag_source_span"] >= SPAN_WORDS for x in per_row) / n,
               "rag_exact_match": sum(x["rag_exact_match"] for x in per_row) / n}
    if judge is not None:
        verdicts = judge.groundedness_many([(r["question"], p, c) for r, p, c in zip(rows, preds, contexts)])
        for rec, (score, raw) in zip(per_row, verdicts):
            rec.update(rag_judge_groundedness=score, rag_judge_raw=raw[:200])
        scores = [s for s, _ in verdicts if s is not None]
        metrics["rag_judge_invalid_rate"] = 1 - len(scores) / n
        if scores:
            metrics["rag_judge_groundedness"] = sum(scores) / len(scores)
    return metrics, per_row
