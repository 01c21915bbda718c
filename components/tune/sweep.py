"""Run sets of trials on Ray Tune: a resumable ``Tuner`` per phase (lr search, sweep, holdout).

Each phase is its own Tune experiment under ``<storage>/<experiment>``; running the step
again with the same settings finds it and resumes it with ``Tuner.restore``: finished
trials are kept, unfinished and errored ones train again from the start (sweep trials are
short; checkpointing them through Tune would cost more than it saves).
"""
from __future__ import annotations

import os
from pathlib import Path

from components.tune.config import SweepConfig
from components.tune.plan import Trial


def storage_root(config: SweepConfig) -> str:
    if config.storage_path:
        return config.storage_path
    return str(Path(os.path.expanduser("~/.cache/llmflow/tune")))


def _trainable(config: SweepConfig, tokens_dir: str | Path):
    from ray import tune

    from components.tune.trial import tune_trainable

    fn = tune.with_parameters(tune_trainable, config_json=config.model_dump_json(), tokens_dir=str(tokens_dir))
    return tune.with_resources(fn, {"cpu": config.cpus_per_trial})


def run_phase(name: str, param_space: dict, config: SweepConfig, tokens_dir: str | Path, callbacks: list,
              scheduler=None) -> list[dict]:
    """Run (or resume) one Tune experiment; returns one row per trial: its spec, learning rate and last result."""
    from ray import tune

    path = f"{storage_root(config).rstrip('/')}/{name}"
    trainable = _trainable(config, tokens_dir)
    if config.resume and tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, restart_errored=True)
        # The restored RunConfig carries the callbacks of the interrupted run, which point at that
        # run's MLflow parent; this run's step has a new one.
        run_config = tuner._local_tuner.get_run_config()
        old = {type(c): c for c in run_config.callbacks or []}
        for cb in callbacks:
            if type(cb) in old and hasattr(cb, "set_state"):
                cb.set_state(old[type(cb)].get_state())
        run_config.callbacks = callbacks
    else:
        tuner = tune.Tuner(
            trainable, param_space=param_space,
            # Reused workers save each trial the torch/transformers import (seconds on 2 cores).
            tune_config=tune.TuneConfig(metric="val_loss", mode="min", scheduler=scheduler,
                                        max_concurrent_trials=config.max_concurrent_trials, reuse_actors=True),
            run_config=tune.RunConfig(name=name, storage_path=storage_root(config), callbacks=callbacks,
                                      verbose=0, failure_config=tune.FailureConfig(max_failures=1)),
        )
    grid = tuner.fit()
    errors = [f"{r.config['trial']['name']}: {type(r.error).__name__}: {r.error}" for r in grid if r.error]
    if errors:
        raise RuntimeError(f"{len(errors)} trial(s) of {name} failed (resume by running the step again): "
                           + " | ".join(errors))
    rows = []
    for r in grid:
        spec = dict(r.config["trial"])
        spec["learning_rate"] = r.config.get("learning_rate", spec["learning_rate"])
        m = r.metrics or {}
        rows.append({**spec, "val_loss": m.get("val_loss"), "train_loss": m.get("train_loss"),
                     "tokens_per_s": m.get("tokens_per_s"), "train_wall_s": m.get("train_wall_s"),
                     "finished": bool(m.get("done_training")), "reports": m.get("training_iteration")})
    return rows


def search_lr(trials: list[Trial], config: SweepConfig, tokens_dir: str | Path, callbacks: list,
              experiment: str) -> dict[tuple[int, int], float]:
    """Per shape, ASHA over ``lr_search.learning_rates`` on its cheapest planned trial; best lr per (depth, width).

    One Tuner for all shapes (workers are reused across them); ``ShapeASHA`` keeps the
    early-stopping races within a shape.
    """
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from components.tune.schedulers import ShapeASHA

    search = config.lr_search
    cheapest: dict[tuple[int, int], Trial] = {}
    for t in trials:
        key = (t.depth, t.width)
        if key not in cheapest or t.num_steps < cheapest[key].num_steps:
            cheapest[key] = t
    # A trial reports num_reports times, once more when its length is not a multiple of it.
    scheduler = ShapeASHA(lambda: ASHAScheduler(
        time_attr="training_iteration", max_t=config.num_reports + 1,
        grace_period=min(search.grace_period, config.num_reports), reduction_factor=search.reduction_factor))
    rows = run_phase(f"{experiment}-lr",
                     {"trial": tune.grid_search([t.to_dict() for t in cheapest.values()]),
                      "learning_rate": tune.grid_search(search.learning_rates)},
                     config, tokens_dir, callbacks, scheduler=scheduler)
    best: dict[tuple[int, int], float] = {}
    for key in cheapest:
        mine = [r for r in rows if (r["depth"], r["width"]) == key]
        done = [r for r in mine if r["finished"]] or mine
        best[key] = min(done, key=lambda r: r["val_loss"])["learning_rate"]
    return best
