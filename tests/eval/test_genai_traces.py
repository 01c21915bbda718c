"""mlflow.genai.evaluate on the flow's SQLite store keeps one trace per scored row."""
import pytest


@pytest.mark.integration
def test_every_scored_row_keeps_its_trace(mlflow_uri):
    import mlflow

    from components.tracking.genai_eval import genai_evaluate

    mlflow.set_tracking_uri(mlflow_uri)
    with mlflow.start_run(run_name="evaluate") as parent:
        pass
    # More rows than MLflow's default 10 workers, with context (three scorers a row): the shape
    # that outwaited SQLAlchemy's connection pool in the e2e run and lost traces.
    rows = [{"question": f"What does statement {i} do?", "prediction": f"It does thing {i}.",
             "reference": f"It does thing {i} well.", "rag_answer": f"[1] It does thing {i}.",
             "rag_context": f"Statement {i} does thing {i} well."} for i in range(24)]
    metrics = genai_evaluate(mlflow_uri, parent.info.run_id, rows, "evaluate/mlflow-genai")

    child = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                               output_format="list")[0]
    traces = mlflow.search_traces(run_id=child.info.run_id, return_type="list", max_results=100)
    assert len(traces) == len(rows)
    assert metrics["f1/mean"] == pytest.approx(sum(2 * 4 / 9 for _ in rows) / len(rows), abs=1e-6)
