"""The one module that talks to MLflow for flows: parent/nested runs, params, metrics, artifacts.

``FlowTracker`` implements the engine's ``flows.engine.tracking.Tracker``; ``flow_tracker``
is the factory a recipe's ``tracking.tracker`` names by default.

Default store: ``sqlite:///<cwd>/mlflow.db`` with artifacts in ``<cwd>/mlartifacts``;
``MLFLOW_TRACKING_URI`` (or the recipe's ``tracking.tracking_uri``) points elsewhere.
A server that is down at start fails the flow at once; one that goes away mid-run does
not stop training: the step's context spools what it could not send and the engine replays it.
"""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

# The MLflow client retries a dead server for minutes by default; we spool instead.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

MAX_PARAM_CHARS = 6000


class TrackingUnavailable(RuntimeError):
    pass


def default_tracking_uri(workdir: str | Path | None = None) -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(workdir or os.getcwd()).resolve() / 'mlflow.db'}"


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast with a clear message if the tracking store cannot be used."""
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as r:
                if r.status != 200:
                    raise TrackingUnavailable(f"MLflow server at {uri} answered /health with {r.status}")
        except (urllib.error.URLError, OSError) as e:
            raise TrackingUnavailable(
                f"MLflow tracking server {uri} is unreachable ({e}). Start it (bash mlflow/start.sh), "
                "fix MLFLOW_TRACKING_URI, or unset it to use the local sqlite store.") from e
    elif uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        if not db.parent.exists() or not os.access(db.parent, os.W_OK):
            raise TrackingUnavailable(f"cannot write the MLflow sqlite store {db}: its folder is missing or read-only")


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            s = json.dumps(v) if not isinstance(v, str) else v
            out[key] = s[:MAX_PARAM_CHARS]
    return out


class FlowTracker:
    """Creates the flow's parent run and one nested run per step."""

    def __init__(self, tracking_uri: str, experiment: str, workdir: str | Path | None = None):
        check_reachable(tracking_uri)
        self.uri = tracking_uri
        self.client = _client(tracking_uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            location = None
            if tracking_uri.startswith("sqlite:///"):
                location = (Path(workdir or os.getcwd()).resolve() / "mlartifacts").as_uri()
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
        else:
            self.experiment_id = exp.experiment_id

    @classmethod
    def for_run(cls, tracking_uri: str, run_id: str) -> FlowTracker:
        """A tracker in the experiment of an existing run, to nest more runs under it."""
        client = _client(tracking_uri)
        exp_id = client.get_run(run_id).info.experiment_id
        return cls(tracking_uri, client.get_experiment(exp_id).name)

    def start_flow(self, name: str, tags: dict[str, str]) -> str:
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        return run.info.run_id

    def start_step(self, parent_run_id: str, name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
        run = self.client.create_run(self.experiment_id, run_name=name,
                                     tags={"mlflow.parentRunId": parent_run_id, **tags})
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in flatten(params).items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run.info.run_id, params=items[i:i + 100])
        return run.info.run_id

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int | None = None,
                    ts_ms: int | None = None) -> None:
        RunLogger(run_id, self.uri).log_metrics(metrics, step=step, ts_ms=ts_ms)

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        for k, v in tags.items():
            self.client.set_tag(run_id, k, str(v))

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def end(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status=status)

    def step_logger(self, run_id: str) -> RunLogger:
        """What a step's context logs through in its Ray worker (picklable, no spool: the engine spools)."""
        return RunLogger(run_id, self.uri)


def flow_tracker(tracking_uri: str | None, experiment: str, workdir: str | Path) -> FlowTracker:
    """The default tracker of a recipe (``tracking.tracker``); fails at once if MLflow is unreachable."""
    return FlowTracker(tracking_uri or default_tracking_uri(workdir), experiment, workdir)


class RunLogger:
    """Logs to one run; picklable (the client is made lazily), so it can go to Ray workers.

    If MLflow cannot be reached, metrics are appended to ``spool`` (JSON lines) and
    ``replay`` sends them later; with no spool the error propagates.
    """

    def __init__(self, run_id: str, tracking_uri: str | None, spool: Path | None = None):
        self.run_id = run_id
        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.spool = Path(spool) if spool else None
        self._c = None

    def __getstate__(self):
        return {**self.__dict__, "_c": None}

    @property
    def client(self):
        if self._c is None:
            self._c = _client(self.tracking_uri)
        return self._c

    def log_metrics(self, metrics: dict[str, float], step: int | None = None, ts_ms: int | None = None) -> None:
        from mlflow.entities import Metric

        ts_ms = ts_ms or int(time.time() * 1000)
        batch = [Metric(k, float(v), ts_ms, step or 0) for k, v in metrics.items()]
        try:
            self.client.log_batch(self.run_id, metrics=batch)
        except Exception as e:
            if self.spool is None:
                raise
            with open(self.spool, "a") as f:
                f.write(json.dumps({"ts_ms": ts_ms, "step": step, "metrics": metrics, "error": str(e)[:200]}) + "\n")

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: dict[str, str]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, v)


def replay_spool(run_id: str, tracking_uri: str, spool: Path) -> int:
    """Send spooled metrics; returns how many records were sent. Raises if MLflow is still down."""
    if not spool.exists():
        return 0
    logger = RunLogger(run_id, tracking_uri)
    records = [json.loads(line) for line in spool.read_text().splitlines() if line.strip()]
    for r in records:
        logger.log_metrics(r["metrics"], step=r["step"], ts_ms=r["ts_ms"])
    spool.unlink()
    return len(records)


def get_run(tracking_uri: str, run_id: str):
    return _client(tracking_uri).get_run(run_id)


def search_runs(tracking_uri: str, experiment: str, filter_string: str = "") -> list:
    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], filter_string=filter_string, max_results=10000)
