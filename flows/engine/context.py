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

from flows.engine.effects import Effect
from flows.engine.tracking import StepLogger

T = TypeVar("T")
# Metrics the tracker missed (it went away mid-step), replayed by the runner when the step ends.
SPOOL_FILE = "_metrics_pending.jsonl"


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
    # Logs to the step's run (made by the flow's tracker, flows.engine.tracking); None: the artifact only.
    logger: StepLogger | None = None
    # A folder every node sees (s3://<root>/.tmp/..., removed when the step commits) when the artifact
    # root is an object store and the cluster shares no disk: a resumable step's checkpoints, what Ray
    # Train workers on other nodes send back; None on a local root (``output`` serves).
    scratch_uri: str | None = None
    # Where each input lives in the artifact store (s3://... on an object-store root): for a step that
    # hands an input to a process on another node (a Serve replica) instead of reading it here.
    input_uris: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        self.output.mkdir(parents=True, exist_ok=True)
        self.links: dict[str, str] = {}
        self.effects: list[Effect] = []

    @classmethod
    def for_test(cls, output: Path, inputs: dict[str, Path] | None = None, name: str = "test") -> StepContext:
        """A context with no MLflow run: metrics go to the artifact's metrics file only."""
        return cls(name=name, output=Path(output), inputs={k: Path(v) for k, v in (inputs or {}).items()},
                   show_progress=False)

    def input(self, name: str) -> Path:
        if name not in self.inputs:
            raise KeyError(f"step {self.name!r} has no input {name!r}; it has {sorted(self.inputs)}")
        return self.inputs[name]

    def input_uri(self, name: str) -> str:
        """The input's address in the artifact store; its local path on a local root (and in tests)."""
        return self.input_uris.get(name) or str(self.input(name))

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
        if self.logger is None:
            return
        try:
            self.logger.log_metrics(clean, step=step, ts_ms=record["ts_ms"])
        except Exception as e:  # noqa: BLE001 - the engine replays the spool once the step ends
            with open(self.output / SPOOL_FILE, "a") as f:
                f.write(json.dumps({**record, "error": str(e)[:200]}) + "\n")

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy a file (report, plot) to the step's MLflow run as well as keeping it here."""
        if self.logger is not None:
            self.logger.log_artifact(Path(path), artifact_path)

    def set_tags(self, tags: dict[str, Any]) -> None:
        if self.logger is not None:
            self.logger.set_tags({k: str(v) for k, v in tags.items()})

    def add_link(self, label: str, text: str) -> None:
        """A line for the run summary (a serving URL, where a key file is): kept in the artifact's
        completion marker, so ``llmflow run`` prints it whether the step ran or was cached."""
        self.links[label] = text

    def report_effect(self, name: str, value: float, baseline: float, *, higher_is_better: bool,
                      min_margin: float = 0.0, baseline_name: str = "baseline",
                      ci: tuple[float, float] | None = None) -> Effect:
        """What this step changed, against its own baseline (flows/engine/effects.py): shown in the
        run summary beside the headline metric, logged as ``effect.<name>.*`` metrics, and checked
        by the runner (a warning, or a failure under ``strict: true``, when the gain is not above
        ``min_margin`` or the low end of ``ci`` is not above 0)."""
        effect = Effect(name, float(value), float(baseline), higher_is_better, float(min_margin), baseline_name,
                        *(float(c) for c in ci) if ci is not None else (None, None))
        self.effects = [e for e in self.effects if e.name != name] + [effect]
        self.log_metrics(effect.metrics())
        return effect

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
