"""What the engine needs from an experiment tracker, and the tracker that records nothing.

The runner opens one parent run per flow and one nested run per step through a ``Tracker``;
a step's ``StepContext`` logs live through a ``StepLogger`` that the tracker makes in the
driver and that travels to the step's Ray worker (so it must pickle). The MLflow
implementation lives in ``components/tracking/mlflow_tracking.py``; the recipe's
``tracking.tracker`` names the factory (``"module:attr"``), so the engine imports no tracker.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol


class StepLogger(Protocol):
    """Logs to one step's run from inside the step (a Ray worker): picklable."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None, ts_ms: int | None = None) -> None: ...

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...

    def set_tags(self, tags: dict[str, str]) -> None: ...


class Tracker(Protocol):
    """A flow's runs: ``start_flow`` and ``start_step`` return a run id (None: nothing is recorded)."""

    uri: str | None

    def start_flow(self, name: str, tags: dict[str, str]) -> str | None: ...

    def start_step(self, parent_run_id: str, name: str, params: dict[str, Any], tags: dict[str, str]) -> str | None: ...

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int | None = None,
                    ts_ms: int | None = None) -> None: ...

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None: ...

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None: ...

    def end(self, run_id: str, status: str) -> None: ...

    def step_logger(self, run_id: str) -> StepLogger: ...


class NullTracker:
    """``tracking=False``: no runs, so no step logs anywhere but its artifact's ``_metrics.jsonl``."""

    uri = None

    def start_flow(self, name: str, tags: dict[str, str]) -> None:
        return None

    def start_step(self, parent_run_id: str | None, name: str, params: dict[str, Any], tags: dict[str, str]) -> None:
        return None

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int | None = None,
                    ts_ms: int | None = None) -> None:
        pass

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        pass

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        pass

    def end(self, run_id: str, status: str) -> None:
        pass

    def step_logger(self, run_id: str) -> StepLogger:
        raise AssertionError("NullTracker starts no runs, so no step has a run to log to")


def load_tracker(ref: str, tracking_uri: str | None, experiment: str, workdir: Path) -> Tracker:
    """Build the tracker ``ref`` (``"module:attr"``, called as ``attr(tracking_uri, experiment, workdir)``)."""
    module, sep, attr = ref.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"tracking.tracker {ref!r} must look like 'package.module:factory'")
    factory = getattr(importlib.import_module(module), attr)
    return factory(tracking_uri, experiment, workdir)
