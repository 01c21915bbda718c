"""The offline answers scored through ``mlflow.genai.evaluate``, so they show in MLflow's evaluation UI.

The answers are already generated (``outputs`` given, no ``predict_fn``); the scorers are our own
deterministic metrics wrapped as MLflow scorers, so MLflow's numbers equal the step's. The LLM
judge stays in ``components.eval.judge``: it talks to any OpenAI-compatible endpoint and cancels
position bias, which MLflow's built-in judges do not.

It runs in a child run of the step's run (``<step>/mlflow-genai``): ``evaluate`` needs an active
fluent run, and ending one would close the step's run before the flow does.
"""
from __future__ import annotations

import os
from typing import Any


def _scorers(with_context: bool):
    from mlflow.entities import Feedback
    from mlflow.genai.scorers import scorer

    from components.eval.heuristics import groundedness
    from components.eval.text_metrics import exact_match, token_f1

    @scorer
    def exact_match_score(outputs, expectations) -> float:
        return exact_match(outputs, expectations["expected_response"])

    @scorer
    def f1(outputs, expectations) -> float:
        return token_f1(outputs, expectations["expected_response"])

    @scorer
    def rag_groundedness(inputs, expectations) -> Feedback:
        g = groundedness(inputs["rag_answer"], expectations["rag_context"])
        if g is None:  # a score, not a scorer failure: an empty answer grounds nothing
            return Feedback(value=0.0, rationale="empty answer (or no retrieved context): nothing in it is grounded")
        return Feedback(value=g, rationale="share of the grounded answer's content words found in its sources")

    return [exact_match_score, f1] + ([rag_groundedness] if with_context else [])


def genai_evaluate(tracking_uri: str, parent_run_id: str, rows: list[dict[str, Any]], run_name: str) -> dict[str, float]:
    """``rows``: question, prediction, reference, and optionally rag_answer + rag_context.

    Returns MLflow's aggregated metrics (e.g. ``f1/mean``) from the child run.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    # MLflow scores 10 rows at a time, each with up to 10 scorer threads, every one writing its
    # trace and assessments to the store. On the flow's SQLite store those writes serialise anyway,
    # and under load the threads outwaited SQLAlchemy's pool (5 + 10 overflow, 30 s): "QueuePool
    # limit ... reached" lost 4 of 16 evaluation traces in an e2e run. Two rows and one scorer at a
    # time lose none; set the variables to scale out against a tracking server.
    os.environ.setdefault("MLFLOW_GENAI_EVAL_MAX_WORKERS", "2")
    os.environ.setdefault("MLFLOW_GENAI_EVAL_MAX_SCORER_WORKERS", "1")
    import mlflow

    with_context = bool(rows) and "rag_context" in rows[0]
    data = []
    for r in rows:
        item = {"inputs": {"question": r["question"]}, "outputs": r["prediction"],
                "expectations": {"expected_response": r["reference"]}}
        if with_context:
            item["inputs"]["rag_answer"] = r["rag_answer"]
            item["expectations"]["rag_context"] = r["rag_context"]
        data.append(item)
    mlflow.set_tracking_uri(tracking_uri)
    parent = mlflow.MlflowClient(tracking_uri).get_run(parent_run_id)
    with mlflow.start_run(experiment_id=parent.info.experiment_id, run_name=run_name, parent_run_id=parent_run_id,
                          tags={"llmflow.role": "mlflow-genai-evaluate"}):
        result = mlflow.genai.evaluate(data=data, scorers=_scorers(with_context))
    return {k: float(v) for k, v in result.metrics.items() if v is not None}
