"""MLflow traces for the online evaluation loop: one trace per sampled request, plus feedback.

Callers must redact before calling: this module stores exactly what it is given.
Everything here runs on the online loop's background worker, never on the request path.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any


class TraceLogger:
    """Writes request traces and assessments into one MLflow experiment."""

    def __init__(self, tracking_uri: str, experiment: str):
        # Export synchronously: feedback and judge tags need the trace in the store at once, and
        # the caller is the loop's background worker anyway. (MLflow's async flush restarts its
        # threads each time: ~100x slower per trace.) Read when MLflow builds its exporter.
        os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
        import mlflow

        self.tracking_uri = tracking_uri
        # Trace APIs use the process-wide URI; a Serve replica talks to one store only.
        mlflow.set_tracking_uri(tracking_uri)
        exp = mlflow.get_experiment_by_name(experiment)
        self.experiment_id = exp.experiment_id if exp else mlflow.create_experiment(experiment)

    def log_request(self, *, inputs: dict[str, Any], outputs: dict[str, Any], start_time_ns: int,
                    end_time_ns: int, attributes: dict[str, Any], tags: dict[str, str],
                    retrieved_ids: list[str] | None = None) -> str:
        """Log a finished request as a trace (root span ``request``, child ``retrieve``); returns its id."""
        import mlflow

        root = mlflow.start_span_no_context(name="request", span_type="CHAIN", inputs=inputs,
                                            attributes={k: _attr(v) for k, v in attributes.items()},
                                            tags=tags, experiment_id=self.experiment_id,
                                            start_time_ns=start_time_ns)
        if retrieved_ids is not None:
            child = mlflow.start_span_no_context(name="retrieve", span_type="RETRIEVER", parent_span=root,
                                                 inputs={"query": inputs.get("query", "")},
                                                 start_time_ns=start_time_ns)
            child.set_outputs({"retrieved_ids": list(retrieved_ids)})
            child.end(end_time_ns=start_time_ns)
        root.set_outputs(outputs)
        root.end(end_time_ns=end_time_ns)
        return root.trace_id

    def log_feedback(self, trace_id: str, name: str, value: Any, rationale: str | None,
                     source_type: str, source_id: str, metadata: dict[str, str] | None = None) -> None:
        """Attach an assessment (a user's thumb, a judge's score) to a trace."""
        from mlflow.entities import AssessmentSource

        import mlflow

        mlflow.log_feedback(trace_id=trace_id, name=name, value=value, rationale=rationale,
                            source=AssessmentSource(source_type=source_type, source_id=source_id),
                            metadata=metadata)

    def set_tags(self, trace_id: str, tags: dict[str, Any]) -> None:
        import mlflow

        for k, v in tags.items():
            mlflow.set_trace_tag(trace_id, k, str(v))

    def flush(self) -> None:
        import mlflow

        mlflow.flush_trace_async_logging()

    def get_trace_json(self, trace_id: str) -> str:
        """The whole stored trace (info, tags, spans, assessments) as JSON text, for audits and tests."""
        import mlflow

        self.flush()
        trace = mlflow.get_trace(trace_id)
        if trace is None:
            raise KeyError(f"trace {trace_id} is not in {self.tracking_uri}")
        return trace.to_json()

    def search(self, max_results: int = 100) -> list[Any]:
        import mlflow

        self.flush()
        return mlflow.search_traces(experiment_ids=[self.experiment_id], max_results=max_results,
                                    return_type="list")


def _attr(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool)) else json.dumps(v)


def now_ns() -> int:
    return time.time_ns()


def set_experiment_tags(tracking_uri: str, experiment_id: str, tags: dict[str, Any]) -> None:
    """Tags on the experiment itself: where the online loop raises drift alerts for the UI."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    for k, v in tags.items():
        client.set_experiment_tag(experiment_id, k, str(v))


def get_experiment_tags(tracking_uri: str, experiment_id: str) -> dict[str, str]:
    from mlflow.tracking import MlflowClient

    return dict(MlflowClient(tracking_uri=tracking_uri).get_experiment(experiment_id).tags)


def start_monitor_run(tracking_uri: str, experiment_id: str, name: str, tags: dict[str, str]) -> str:
    """A long-lived run the online loop logs its windowed metrics (drift, arms, scores) into."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri).create_run(experiment_id, run_name=name, tags=tags).info.run_id


def end_monitor_run(tracking_uri: str, run_id: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=tracking_uri).set_terminated(run_id, status="FINISHED")


def log_table(tracking_uri: str, run_id: str, rows: list[dict], artifact_file: str) -> None:
    """A per-example results table on a run (MLflow's table view: compare runs row by row)."""
    from mlflow.tracking import MlflowClient

    columns = sorted({k for r in rows for k in r})
    data = {c: [r.get(c) if isinstance(r.get(c), (str, int, float, bool, type(None))) else json.dumps(r.get(c))
                for r in rows] for c in columns}
    MlflowClient(tracking_uri=tracking_uri).log_table(run_id, data=data, artifact_file=artifact_file)
