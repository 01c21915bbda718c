"""What a step function sees: its inputs, where to write, and how to report.

A step function has the signature ``run(ctx: StepContext, config: SomeConfig) -> dict``.
It reads upstream artifacts from ``ctx.inputs[name]`` (local directories), writes its
own artifact into ``ctx.output`` (a temporary directory the engine commits atomically
once the function returns), logs metrics through ``ctx.log_metrics`` and returns its
headline metrics (the first one is shown in the run summary).
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class StepContext:
    name: str
    output: Path
    inputs: dict[str, Path] = field(default_factory=dict)
    address: str = "local"
    run_id: str | None = None
    tracking_uri: str | None = None
    show_progress: bool = True
    # Long-lived state outside any artifact (e.g. a live service's feedback log): <workdir>/.llmflow/state
    state_dir: Path | None = None

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        self.output.mkdir(parents=True, exist_ok=True)
        self._logger = None

    @classmethod
    def for_test(cls, output: Path, inputs: dict[str, Path] | None = None, name: str = "test") -> StepContext:
        """A context with no MLflow run: metrics go to the artifact's metrics file only."""
        return cls(name=name, output=Path(output), inputs={k: Path(v) for k, v in (inputs or {}).items()},
                   show_progress=False)

    def input(self, name: str) -> Path:
        if name not in self.inputs:
            raise KeyError(f"step {self.name!r} has no input {name!r}; it has {sorted(self.inputs)}")
        return self.inputs[name]

    # -- reporting -----------------------------------------------------------------
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Record metrics: always to ``_metrics.jsonl`` in the artifact, and live to MLflow.

        The local file is the source of truth: if MLflow is unreachable mid-step, the
        engine replays what MLflow missed once the step ends, so no metric is lost.
        """
        clean = {k: float(v) for k, v in metrics.items() if v is not None}
        record = {"ts_ms": int(time.time() * 1000), "step": step, "metrics": clean}
        with open(self.output / "_metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.run_id is not None:
            self._tracker().log_metrics(clean, step=step, ts_ms=record["ts_ms"])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy a file (report, plot) to the step's MLflow run as well as keeping it here."""
        if self.run_id is not None:
            self._tracker().log_artifact(Path(path), artifact_path)

    def set_tags(self, tags: dict[str, Any]) -> None:
        if self.run_id is not None:
            self._tracker().set_tags({k: str(v) for k, v in tags.items()})

    def progress(self, items: Iterable[T], total: int | None = None, desc: str | None = None) -> Iterator[T]:
        """Wrap a loop in a progress bar on a terminal; elsewhere (a Ray worker, whose output
        the driver prints line by line) a line at every 10% instead."""
        if not self.show_progress:
            yield from items
            return
        import sys

        desc = desc or self.name
        if sys.stdout.isatty():
            from rich.progress import track

            yield from track(items, total=total, description=desc, transient=True)
            return
        total = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
        t0, next_pct = time.time(), 10
        for i, item in enumerate(items, 1):
            yield item
            if total and i * 100 >= next_pct * total:
                print(f"[{self.name}] {desc}: {i}/{total} ({100 * i // total}%) {time.time() - t0:.0f}s", flush=True)
                next_pct = 100 * i // total + 10

    def _tracker(self):
        if self._logger is None:
            from components.tracking.mlflow_tracking import RunLogger
            self._logger = RunLogger(self.run_id, self.tracking_uri, spool=self.output / "_metrics_pending.jsonl")
        return self._logger
