"""ASHA per model shape, in one Tuner.

ASHA stops the worst trials at each rung, which is only fair among trials that differ in
nothing but their hyperparameters: a bigger model or a longer run at the same rung is a
different race. ``ShapeASHA`` keeps one ASHA per (depth, width, steps) and routes each
trial to its own, so a single Tuner (one pool of reused workers) searches every shape.
"""
from __future__ import annotations

from collections.abc import Callable

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler


class ShapeASHA(FIFOScheduler):
    def __init__(self, make: Callable[[], ASHAScheduler]):
        super().__init__()
        self._make = make
        self._groups: dict[tuple, ASHAScheduler] = {}
        self._props: tuple | None = None

    def set_search_properties(self, metric, mode, **spec) -> bool:
        self._props = (metric, mode, spec)
        self._metric = metric
        return all(s.set_search_properties(metric, mode, **spec) for s in self._groups.values())

    def _group(self, trial) -> ASHAScheduler:
        spec = trial.config["trial"]
        key = (spec["depth"], spec["width"], spec["num_steps"])
        if key not in self._groups:
            scheduler = self._make()
            if self._props is not None:
                metric, mode, spec_kw = self._props
                scheduler.set_search_properties(metric, mode, **spec_kw)
            self._groups[key] = scheduler
        return self._groups[key]

    def on_trial_add(self, tune_controller, trial):
        self._group(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result) -> str:
        return self._group(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result):
        self._group(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial):
        self._group(trial).on_trial_remove(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial):
        self._group(trial).on_trial_error(tune_controller, trial)

    def debug_string(self) -> str:
        stopped = sum(s._num_stopped for s in self._groups.values())
        return f"ASHA per shape: {len(self._groups)} groups, {stopped} trials stopped early"


__all__ = ["ShapeASHA", "TrialScheduler"]
