"""Offline RAG groundedness: scoring logic with a fake judge, then eval.offline with a real index,
model, judge endpoint and MLflow store (mlflow.genai.evaluate included)."""
import json
import re

import pytest

from components.eval.judge import Judge
from components.eval.prompt_templates import TEMPLATES
from components.eval.rag_eval import score_rag
from components.rag.retriever import Source
from components.tracking.prompts import PromptRef

PROMPTS = {n: PromptRef(n, 0, t) for n, t in TEMPLATES.items()}


def src(doc_id: str, text: str) -> Source:
    return Source(id=doc_id + "-0", doc_id=doc_id, title=doc_id, source="s", text=text, chunk_index=0, score=1.0,
                  relevance=0.9)


class OverlapJudge:
    """Scores 5 when every answer word is in the sources, 1 otherwise; one reply is garbage."""

    def chat(self, prompt: str, max_tokens: int, choices=None) -> str:
        sources = re.search(r"Sources:\n(.*)\n\nQuestion:", prompt, re.DOTALL).group(1).lower().split()
        answer = re.search(r"\nAnswer: (.*)\n\nGroundedness", prompt, re.DOTALL).group(1)
        if answer == "garbage":
            return "no score"
        return "5" if set(answer.lower().split()) <= set(sources) else "1"


def test_score_rag_hit_rate_lexical_and_judged_groundedness():
    rows = [{"question": "what does assert do", "answer": "assert tests a condition", "source_id": "assert"},
            {"question": "what is a lambda", "answer": "an anonymous function", "source_id": "lambda"},
            {"question": "what is pass", "answer": "a null operation", "source_id": "pass"}]
    sources = [[src("assert", "assert tests a condition and raises AssertionError")],
               [src("for", "the for statement iterates over a sequence")],  # wrong document retrieved
               [src("pass", "pass is a null operation")]]
    preds = ["assert tests a condition", "lambda makes closures quickly", "garbage"]
    judge = Judge(OverlapJudge(), PROMPTS["llmflow-judge-rubric"], PROMPTS["llmflow-judge-pairwise"],
                  groundedness_prompt=PROMPTS["llmflow-judge-groundedness"])
    metrics, per_row = score_rag(rows, preds, sources, max_source_chars=400, judge=judge)
    assert metrics["rag_retrieval_hit"] == pytest.approx(2 / 3)
    assert per_row[0]["rag_groundedness"] == 1.0  # every content word is in the source
    assert per_row[1]["rag_groundedness"] == 0.0  # none of "lambda makes closures quickly" is
    assert metrics["rag_groundedness"] == pytest.approx((1.0 + 0.0 + 0.0) / 3)
    assert metrics["rag_exact_match"] == pytest.approx(1 / 3) and metrics["rag_answered"] == 1.0
    assert [r["rag_judge_groundedness"] for r in per_row] == [5, 1, None]
    assert metrics["rag_judge_groundedness"] == 3.0 and metrics["rag_judge_invalid_rate"] == pytest.approx(1 / 3)


def test_score_rag_empty_answers_score_zero_groundedness():
    rows = [{"question": "q", "answer": "a", "source_id": "x"}]
    metrics, per_row = score_rag(rows, [""], [[src("x", "some text")]], 400)
    assert per_row[0]["rag_groundedness"] is None and metrics["rag_answered"] == 0.0
    assert metrics["rag_groundedness"] == 0.0 and "rag_judge_groundedness" not in metrics


def test_groundedness_without_its_prompt_is_an_error():
    judge = Judge(OverlapJudge(), PROMPTS["llmflow-judge-rubric"], PROMPTS["llmflow-judge-pairwise"])
    with pytest.raises(ValueError, match="llmflow-judge-groundedness"):
        judge.groundedness("q", "a", "c")


@pytest.mark.integration
def test_eval_rows_about_indexed_documents_only(tmp_path):
    from components.eval.steps import load_eval_rows

    rows = [{"question": f"q{i}", "answer": "a", "source_id": f"doc{i % 4}"} for i in range(40)]
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    picked = load_eval_rows(tmp_path, 8, seed=0, source_ids={"doc1", "doc3"})
    assert len(picked) == 8 and {r["source_id"] for r in picked} == {"doc1", "doc3"}
    assert len(load_eval_rows(tmp_path, 100, seed=0)) == 40
    with pytest.raises(ValueError, match="indexed_only"):
        load_eval_rows(tmp_path, 8, seed=0, source_ids={"elsewhere"})


def test_offline_eval_with_index_scores_groundedness_and_logs_genai(tmp_path, mlflow_uri, tiny_model_dir,
                                                                   rag_index_dir, rag_docs, judge_url):
    from mlflow.tracking import MlflowClient

    from components.eval.config import GateConfig, JudgeConfig, OfflineEvalConfig
    from components.eval.steps import run_offline_eval
    from components.tracking.mlflow_tracking import FlowTracker, get_run
    from flows.engine.context import StepContext

    data = tmp_path / "data"
    data.mkdir()
    rows = [{"question": f"What does the {k} statement do?", "answer": rag_docs[k].strip().split("\n")[0][:80],
             "source_id": k} for k in ("assert", "lambda", "yield", "global")]
    # a question about a document the index does not hold is not asked (rag.indexed_only)
    rows.insert(1, {"question": "What does the frobnicate module do?", "answer": "It frobs.",
                    "source_id": "module/not-indexed"})
    (data / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = OfflineEvalConfig(max_questions=4, max_new_tokens=8, gate=GateConfig(enabled=False),
                            judge=JudgeConfig(base_url=judge_url, model="tiny", constrained_choice=True),
                            pairwise_against="none")
    tracker = FlowTracker(mlflow_uri, "rag-eval-test", workdir=tmp_path)
    run_id = tracker.start_step(tracker.start_flow("f", {}), "evaluate", {}, {})
    ctx = StepContext(name="evaluate", output=tmp_path / "out", run_id=run_id, tracking_uri=mlflow_uri,
                      logger=tracker.step_logger(run_id),
                      inputs={"model": tiny_model_dir, "data": data, "index": rag_index_dir}, show_progress=False)
    metrics = run_offline_eval(ctx, cfg)

    # questions name their topic: hybrid retrieval finds the source document for most of them
    assert metrics["rag_retrieval_hit"] >= 0.75
    assert 0.0 <= metrics.get("rag_groundedness", 0.0) <= 1.0 and "rag_answered" in metrics
    assert 1 <= metrics["rag_judge_groundedness"] <= 5  # the constrained judge always gives a 1-5 score
    results = [json.loads(x) for x in (ctx.output / "results.jsonl").read_text().splitlines()]
    assert all(r["rag_source_ids"] and "rag_prediction" in r for r in results)
    assert sorted(r["source_id"] for r in results) == ["assert", "global", "lambda", "yield"]
    report = json.loads((ctx.output / "report.json").read_text())
    assert report["rag"]["index"] == str(rag_index_dir) and report["mlflow_genai"].startswith("ran")
    assert report["prompt_versions"]["llmflow-judge-groundedness"].startswith("prompts:/llmflow-judge-groundedness/")
    assert get_run(mlflow_uri, run_id).data.metrics["rag_retrieval_hit"] == metrics["rag_retrieval_hit"]

    # mlflow.genai.evaluate ran in a child run, with our scorers' means equal to the step's metrics
    client = MlflowClient(mlflow_uri)
    exp = get_run(mlflow_uri, run_id).info.experiment_id
    children = client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
    assert len(children) == 1 and children[0].info.run_name == "evaluate/mlflow-genai"
    genai = children[0].data.metrics
    assert genai["f1/mean"] == pytest.approx(metrics["f1"], abs=1e-6)
    # every answer is scored (an empty one as 0), so no scorer call fails and the means agree
    assert genai["rag_groundedness/mean"] == pytest.approx(metrics["rag_groundedness"], abs=1e-6)
