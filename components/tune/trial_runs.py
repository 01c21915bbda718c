"""Every Tune trial as an MLflow run nested under the sweep step's run.

A Tune ``Callback`` runs in the driver (the step function), so trial workers never talk
to MLflow: the driver opens a nested run when a trial starts, logs each reported result
at its training step, and closes the run when the trial ends (FINISHED, or KILLED when
ASHA stops it early, FAILED on error). All MLflow calls go through components/tracking.

The callback is pickled into the Tune experiment (Tuner.restore brings it back), so it
holds only strings and makes its tracker lazily; ``get_state``/``set_state`` carry the
trial → run map across a restore, so a trial restarted after a crash closes its old run.
"""
from __future__ import annotations

from ray.tune import Callback

from components.tracking.mlflow_tracking import FlowTracker, RunLogger

# Reported keys worth a curve in MLflow (the rest are Tune bookkeeping).
_CURVES = ("val_loss", "train_loss", "tokens", "progress", "tokens_per_s")


class TrialRuns(Callback):
    def __init__(self, tracking_uri: str, parent_run_id: str, sweep: str):
        self.tracking_uri, self.parent_run_id, self.sweep = tracking_uri, parent_run_id, sweep
        self.runs: dict[str, str] = {}  # Tune trial id -> MLflow run id
        self._tracker = None

    def __getstate__(self):
        return {**self.__dict__, "_tracker": None}

    @property
    def tracker(self) -> FlowTracker:
        if self._tracker is None:
            self._tracker = FlowTracker.for_run(self.tracking_uri, self.parent_run_id)
        return self._tracker

    def get_state(self) -> dict:
        return {"runs": dict(self.runs)}

    def set_state(self, state: dict) -> None:
        self.runs = dict(state.get("runs", {}))

    def on_trial_start(self, iteration, trials, trial, **info):
        stale = self.runs.pop(trial.trial_id, None)
        if stale:
            self.tracker.end(stale, "KILLED")  # restarted after an interruption: its old run is over
        spec = dict(trial.config["trial"])
        if "learning_rate" in trial.config:
            spec["learning_rate"] = trial.config["learning_rate"]
        name = f"{self.sweep}/{spec['name']}" + (f"/lr{spec['learning_rate']:.2g}"
                                                 if "learning_rate" in trial.config else "")
        self.runs[trial.trial_id] = self.tracker.start_step(
            self.parent_run_id, name, spec,
            {"llmflow.sweep": self.sweep, "llmflow.tune_trial_id": trial.trial_id, "llmflow.kind": "tune.trial"})

    def on_trial_result(self, iteration, trials, trial, result, **info):
        run_id = self.runs.get(trial.trial_id)
        if run_id is None:
            return
        metrics = {k: float(result[k]) for k in _CURVES if k in result}
        RunLogger(run_id, self.tracking_uri).log_metrics(metrics, step=int(result.get("step", 0)))

    def on_trial_complete(self, iteration, trials, trial, **info):
        run_id = self.runs.get(trial.trial_id)
        if run_id:
            done = bool((trial.last_result or {}).get("done_training"))
            self.tracker.set_tags(run_id, {"llmflow.trial_status": "finished" if done else "stopped_early"})
            self.tracker.end(run_id, "FINISHED" if done else "KILLED")

    def on_trial_error(self, iteration, trials, trial, **info):
        run_id = self.runs.get(trial.trial_id)
        if run_id:
            self.tracker.set_tags(run_id, {"llmflow.trial_status": "error"})
            self.tracker.end(run_id, "FAILED")
