"""Running a recipe: plan addresses, skip complete artifacts, run the rest as Ray tasks.

Addresses depend only on configs and upstream addresses, so the whole plan is known
before anything runs: ``llmflow status`` and the cache check need no execution.
Independent steps run concurrently; a failed step stops its downstream, lets the other
branches finish, and a re-run resumes at the failed step (everything upstream is cached).
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from flows.engine import cluster
from flows.engine.address import code_version, step_address
from flows.engine.context import SPOOL_FILE
from flows.engine.effects import Effect, problems
from flows.engine.registry import StepKind
from flows.engine.store import ArtifactStore
from flows.engine.tracking import NullTracker, StepLogger, Tracker, load_tracker
from flows.recipe import Recipe


@dataclass
class PlannedStep:
    name: str
    kind: StepKind
    config: BaseModel
    address: str
    needs: dict[str, str]  # input name -> upstream step
    uri: str


@dataclass
class StepOutcome:
    name: str
    status: str  # cached | done | failed | skipped
    wall_s: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    uri: str = ""
    address: str = ""
    run_id: str | None = None
    error: str | None = None
    # Summary lines the step left in its completion marker (StepContext.add_link): label -> text.
    links: dict[str, str] = field(default_factory=dict)
    # What the step changed against its own baseline (StepContext.report_effect), as Effect fields.
    effects: list[dict[str, Any]] = field(default_factory=list)
    # Why a declared effect is absent or too small (empty when every effect is shown).
    effect_problems: list[str] = field(default_factory=list)
    # The Ray node the step ran on (empty when cached).
    node_id: str = ""


@dataclass
class FlowResult:
    name: str
    run_id: str | None
    outcomes: dict[str, StepOutcome]
    wall_s: float

    @property
    def ok(self) -> bool:
        return all(o.status in ("cached", "done") for o in self.outcomes.values())

    def recomputed(self) -> list[str]:
        return [n for n, o in self.outcomes.items() if o.status == "done"]


class FlowFailed(RuntimeError):
    def __init__(self, result: FlowResult):
        self.result = result
        failed = {n: o.error for n, o in result.outcomes.items() if o.status == "failed"}
        msg = "; ".join(f"{n}: {(e or '').strip().splitlines()[-1] if e else ''}" for n, e in failed.items())
        super().__init__(f"flow {result.name!r} failed at {sorted(failed)} — {msg}. Fix and re-run: "
                         "completed steps are cached, the run resumes at the failed step.")


def plan_flow(recipe: Recipe, store: ArtifactStore) -> dict[str, PlannedStep]:
    plan: dict[str, PlannedStep] = {}
    for name in recipe.order:
        spec = recipe.model.steps[name]
        kind = recipe.kind(name)
        if spec.num_cpus is not None or spec.num_gpus is not None:
            kind = replace(kind, num_cpus=spec.num_cpus if spec.num_cpus is not None else kind.num_cpus,
                           num_gpus=spec.num_gpus if spec.num_gpus is not None else kind.num_gpus)
        inputs = {inp: plan[up].address for inp, up in spec.needs.items()}
        addr = step_address(name, kind.name, recipe.configs[name], inputs, code_version(kind.modules, kind.code))
        plan[name] = PlannedStep(name, kind, recipe.configs[name], addr, dict(spec.needs), store.uri(name, addr))
    return plan


def state_path(workdir: Path, flow: str) -> Path:
    return workdir / ".llmflow" / "state" / f"{flow}.json"


def _execute(step: PlannedStep, root: str, workdir: str, inputs: dict[str, tuple[str, str]],
             run_id: str | None, tracking_uri: str | None, logger: StepLogger | None) -> dict[str, Any]:
    """Runs inside a Ray task: the step's function, then the atomic commit of its artifact."""
    from flows.engine.context import StepContext

    store = ArtifactStore(root, workdir)
    input_paths = {k: store.local_path(up, addr) for k, (up, addr) in inputs.items()}
    tmp = store.new_temp(step.name, step.address, reuse=step.kind.resumable)
    ctx = StepContext(name=step.name, output=tmp, inputs=input_paths, address=step.address,
                      run_id=run_id, tracking_uri=tracking_uri, state_dir=Path(workdir) / ".llmflow" / "state",
                      logger=logger, scratch_uri=store.scratch_uri(step.name, step.address),
                      input_uris={k: store.uri(up, addr) for k, (up, addr) in inputs.items()})
    node_id = _node_id()
    ctx.set_tags({"llmflow.node_id": node_id})  # where it ran: on a cluster, lineage names the node
    t0 = time.time()
    metrics = step.kind.run(ctx, step.config) or {}
    wall_s = time.time() - t0
    metrics = {k: float(v) for k, v in metrics.items()}
    record = {"step": step.name, "kind": step.kind.name, "address": step.address,
              "config": step.config.model_dump(mode="json"), "inputs": {k: a for k, (_, a) in inputs.items()},
              "metrics": metrics, "wall_s": wall_s, "mlflow_run_id": run_id, "links": ctx.links,
              "effects": [e.to_json() for e in ctx.effects],
              "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    uri = store.commit(tmp, step.name, step.address, record)
    return {"metrics": metrics, "wall_s": wall_s, "uri": uri, "links": ctx.links, "effects": record["effects"],
            "node_id": node_id}


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


class FlowRunner:
    def __init__(self, recipe: Recipe, workdir: str | Path | None = None, address: str | None = None,
                 console=None, tracking: bool = True, tracker: Tracker | None = None):
        """``tracker`` records the flow's runs; by default the one the recipe's ``tracking.tracker``
        names (MLflow), built when the flow starts. ``tracking=False``: a ``NullTracker``."""
        from rich.console import Console

        self.recipe = recipe
        self.workdir = Path(workdir or os.getcwd()).resolve()
        self.address = address
        self.console = console or Console()
        self.store = ArtifactStore(recipe.model.artifact_root, self.workdir)
        self.plan = plan_flow(recipe, self.store)
        self.tracking = tracking
        self._tracker = tracker

    def run(self, force: list[str] | None = None) -> FlowResult:
        force = list(force or [])
        unknown = [f for f in force if f not in self.plan]
        if unknown:
            raise ValueError(f"--force names unknown step(s) {unknown}; steps are {list(self.plan)}")
        forced = self.recipe.downstream(set(force))
        self.store.sweep_temps()
        tracker, parent, uri = self._start_tracking()
        self._open_runs: dict[str, str] = {}  # MLflow run id -> step, for steps still running
        self._stop = threading.Event()
        owns_ray = False
        t0 = time.time()
        try:
            persistent = any(s.kind.long_lived for s in self.plan.values())
            owns_ray = cluster.connect(cluster.resolve_address(self.address, self.recipe.model.ray.address),
                                       self.recipe.model.ray.num_cpus, persistent=persistent, workdir=self.workdir)
            # After ray.init, which installs Ray's own SIGTERM handler (it logs and aborts the driver).
            with _sigterm_as_exception(self._stop):
                outcomes = self._loop(forced, tracker, parent, uri)
        except BaseException as e:
            # Whatever stopped the driver (an exception, Ctrl-C, SIGTERM), no MLflow run stays RUNNING.
            if parent:
                self._close_runs(tracker, parent, e)
            raise
        finally:
            if owns_ray:
                import ray

                ray.shutdown()
        result = FlowResult(self.recipe.name, parent, outcomes, time.time() - t0)
        self._save_state(result)
        if parent:
            self._track(tracker.set_tags, parent, {"llmflow.recomputed": ",".join(result.recomputed()) or "-"})
            self._track(tracker.end, parent, "FINISHED" if result.ok else "FAILED")
        return result

    def _close_runs(self, tracker, parent: str, e: BaseException) -> None:
        """Mark the parent and every open step run KILLED (interrupted) or FAILED, with the error as a tag."""
        status = "KILLED" if isinstance(e, (KeyboardInterrupt, FlowTerminated)) else "FAILED"
        error = "".join(traceback.format_exception(e))[-5000:]
        for run_id in list(self._open_runs):
            self._track(tracker.set_tags, run_id, {"llmflow.error": error})
            self._track(tracker.end, run_id, status)
        self._track(tracker.set_tags, parent, {"llmflow.error": error})
        self._track(tracker.end, parent, status)

    def _track(self, fn, *args) -> None:
        """A tracking call after the flow started: if MLflow went away, warn and go on."""
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001
            self.console.print(f"[yellow]MLflow call {fn.__name__} failed ({str(e)[:200]}); the flow goes on[/]")

    # -- tracking ------------------------------------------------------------------
    def _start_tracking(self):
        if not self.tracking:
            return NullTracker(), None, None
        tracking = self.recipe.model.tracking
        tracker = self._tracker or load_tracker(tracking.tracker, tracking.tracking_uri, tracking.experiment,
                                                self.workdir)
        parent = tracker.start_flow(self.recipe.name, {"llmflow.flow": self.recipe.name,
                                                       "llmflow.recipe": self.recipe.source,
                                                       "llmflow.artifact_root": self.store.root_uri})
        recipe_file = self.workdir / ".llmflow" / "state" / f"{self.recipe.name}.recipe.json"
        recipe_file.parent.mkdir(parents=True, exist_ok=True)
        recipe_file.write_text(self.recipe.model.model_dump_json(indent=2))
        tracker.log_artifact(parent, recipe_file)
        return tracker, parent, tracker.uri

    def _step_run(self, tracker: Tracker, parent, step: PlannedStep, cache: str) -> str | None:
        if parent is None:
            return None
        tags = {"llmflow.step": step.name, "llmflow.kind": step.kind.name, "llmflow.address": step.address,
                "llmflow.artifact_uri": step.uri, "llmflow.cache": cache}
        for inp, up in step.needs.items():
            tags[f"llmflow.input.{inp}"] = f"{up}@{self.plan[up].address[:16]}"
            tags[f"llmflow.input_uri.{inp}"] = self.plan[up].uri
        try:
            return tracker.start_step(parent, step.name, step.config.model_dump(mode="json"), tags)
        except Exception as e:  # noqa: BLE001 - tracking lost mid-run must not stop the flow
            self.console.print(f"[yellow]MLflow unavailable for step {step.name} ({e}); its metrics stay in "
                               f"{step.uri}/_metrics.jsonl[/]")
            return None

    # -- the scheduling loop ---------------------------------------------------------
    def _loop(self, forced: set[str], tracker, parent, uri) -> dict[str, StepOutcome]:
        import ray

        remote = ray.remote(_execute)
        outcomes: dict[str, StepOutcome] = {}
        running: dict[Any, tuple[PlannedStep, str | None, float]] = {}
        pending = list(self.recipe.order)
        while pending or running:
            if self._stop.is_set():
                raise FlowTerminated("the flow's driver received SIGTERM")
            for name in list(pending):
                step = self.plan[name]
                ups = [outcomes.get(u) for u in step.needs.values()]
                if any(u is not None and u.status in ("failed", "skipped") for u in ups):
                    outcomes[name] = StepOutcome(name, "skipped", address=step.address, uri=step.uri,
                                                 error="an upstream step failed")
                    pending.remove(name)
                    continue
                if not all(u is not None for u in ups):
                    continue
                pending.remove(name)
                marker = self.store.marker(name, step.address) if step.kind.cacheable else None
                if marker is not None and name not in forced:
                    outcomes[name] = self._cached(tracker, parent, step, marker)
                    continue
                run_id = self._step_run(tracker, parent, step, "miss")
                inputs = {k: (up, self.plan[up].address) for k, up in step.needs.items()}
                logger = tracker.step_logger(run_id) if run_id else None
                ref = remote.options(num_cpus=step.kind.num_cpus, num_gpus=step.kind.num_gpus,
                                     name=f"llmflow:{name}", max_retries=0).remote(
                    step, self.store.root_uri, str(self.workdir), inputs, run_id, uri, logger)
                running[ref] = (step, run_id, time.time())
                if run_id:
                    self._open_runs[run_id] = name
                self.console.print(f"[cyan]▶ {name}[/] ({step.kind.name}) started")
            if not running:
                continue
            done, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in done:
                step, run_id, t0 = running.pop(ref)
                outcomes[step.name] = self._finish(tracker, ref, step, run_id, t0, uri)
                self._open_runs.pop(run_id, None)
        return outcomes

    def _cached(self, tracker, parent, step: PlannedStep, marker: dict) -> StepOutcome:
        run_id = self._step_run(tracker, parent, step, "hit")
        if run_id:
            self._track(tracker.set_tags, run_id, {"llmflow.cached_from_run": marker.get("mlflow_run_id") or "-"})
            if marker.get("metrics"):
                self._track(tracker.log_metrics, run_id, marker["metrics"])
            self._track(tracker.end, run_id, "FINISHED")
        self.console.print(f"[green]✓ {step.name}[/] cached")
        return self._check_effects(step, StepOutcome(step.name, "cached", 0.0, marker.get("metrics", {}), step.uri,
                                                     step.address, run_id, links=marker.get("links", {}),
                                                     effects=marker.get("effects", [])))

    def _finish(self, tracker, ref, step: PlannedStep, run_id, t0, uri) -> StepOutcome:
        import ray

        try:
            out = ray.get(ref)
        except Exception as e:  # noqa: BLE001 - a step's failure is reported, the flow goes on elsewhere
            err = _root_error(e)
            self.console.print(f"[red]✗ {step.name} failed after {time.time() - t0:.1f}s:[/] {err.strip().splitlines()[-1]}")
            if run_id:
                self._track(tracker.set_tags, run_id, {"llmflow.error": err[-5000:]})
                self._track(tracker.end, run_id, "FAILED")
            return StepOutcome(step.name, "failed", time.time() - t0, uri=step.uri, address=step.address,
                               run_id=run_id, error=err)
        if run_id:
            self._flush_spool(tracker, step, run_id)
            if out["metrics"]:
                self._track(tracker.log_metrics, run_id, out["metrics"])
            self._track(tracker.end, run_id, "FINISHED")
        head = next(iter(out["metrics"].items()), None)
        self.console.print(f"[green]✓ {step.name}[/] done in {out['wall_s']:.1f}s"
                           + (f" ({head[0]}={head[1]:.4g})" if head else ""))
        return self._check_effects(step, StepOutcome(step.name, "done", out["wall_s"], out["metrics"], out["uri"],
                                                     step.address, run_id, links=out["links"],
                                                     effects=out["effects"], node_id=out.get("node_id", "")))

    def _check_effects(self, step: PlannedStep, outcome: StepOutcome) -> StepOutcome:
        """A step whose declared effect is absent: a warning, or under ``strict: true`` a failed step
        (its artifact stays: a re-run reads it from the cache and checks again, with the same result)."""
        outcome.effect_problems = problems(step.kind.effects, [Effect(**e) for e in outcome.effects])
        for p in outcome.effect_problems:
            self.console.print(f"[yellow]⚠ {step.name} ({step.kind.name}): {p}[/]")
        if outcome.effect_problems and self.recipe.model.strict:
            outcome.status = "failed"
            outcome.error = (f"strict: true and the step showed no effect: {'; '.join(outcome.effect_problems)}. "
                             "Train longer or change its config, or set strict: false to only warn")
        return outcome

    def _flush_spool(self, tracker: Tracker, step: PlannedStep, run_id: str) -> None:
        if self.store.remote:
            return
        spool = Path(step.uri) / SPOOL_FILE
        try:
            n = replay_spool(tracker, run_id, spool)
            if n:
                self.console.print(f"[yellow]{step.name}: replayed {n} metric records MLflow had missed[/]")
        except Exception as e:  # noqa: BLE001
            self.console.print(f"[yellow]{step.name}: MLflow still unreachable ({e}); unsent metrics are in {spool}[/]")

    def _save_state(self, result: FlowResult) -> None:
        path = state_path(self.workdir, self.recipe.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"flow": result.name, "run_id": result.run_id, "wall_s": result.wall_s,
                                    "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                    "steps": {n: asdict(o) for n, o in result.outcomes.items()}}, indent=2))


class FlowTerminated(BaseException):
    """SIGTERM reached the driver (``kill``, a job scheduler, a container stop)."""


@contextmanager
def _sigterm_as_exception(stop: threading.Event):
    """While the flow runs, SIGTERM sets ``stop``; the scheduling loop checks it each second and
    raises FlowTerminated, so cleanup runs as for Ctrl-C. (Raising inside the handler would
    surface inside Ray's C extension as a SystemError.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def replay_spool(tracker: Tracker, run_id: str, spool: Path) -> int:
    """Send the metrics a step's tracker missed; returns how many records were sent. Raises if it is still down."""
    if not spool.exists():
        return 0
    records = [json.loads(line) for line in spool.read_text().splitlines() if line.strip()]
    for r in records:
        tracker.log_metrics(run_id, r["metrics"], step=r["step"], ts_ms=r["ts_ms"])
    spool.unlink()
    return len(records)


def _root_error(e: Exception) -> str:
    cause = getattr(e, "cause", None)
    if cause is not None:
        return "".join(traceback.format_exception(cause))
    return str(e)


def step_status(runner: FlowRunner) -> list[dict[str, Any]]:
    """Per step: done/cached (complete artifact), failed (last run), or pending — without running."""
    state_file = state_path(runner.workdir, runner.recipe.name)
    last = json.loads(state_file.read_text())["steps"] if state_file.exists() else {}
    rows = []
    for name, step in runner.plan.items():
        marker = runner.store.marker(name, step.address)
        prev = last.get(name, {})
        if marker is not None:
            status = "done"
        elif prev.get("status") == "failed" and prev.get("address") == step.address:
            status = "failed"
        else:
            status = "pending"
        rows.append({"step": name, "kind": step.kind.name, "status": status, "address": step.address[:16],
                     "artifact": step.uri, "mlflow_run_id": (marker or {}).get("mlflow_run_id") or prev.get("run_id")})
    return rows
