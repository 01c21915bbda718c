"""One sweep trial = one call of the pretraining function (``components.train.loop.train``).

``run_trial`` is callable bare in one process (the sequential baseline of the benchmark
uses it that way); ``tune_trainable`` is the same call as a Ray Tune function trainable,
one worker per trial — the models of a sweep are tiny, so Ray Train's process group
would cost more than it gives.

The pretraining function writes its validation losses to ``train_metrics.jsonl`` as it
goes; it runs in a thread here while this thread forwards each new validation record to
``report`` (``tune.report`` under Tune), so ASHA can stop a trial early.
"""
from __future__ import annotations

import json
import math
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from components.tune.config import SweepConfig


def pretrain_config(trial: dict, config: SweepConfig):
    """The ``PretrainConfig`` of one trial: one plain worker, a schedule fitted to its length."""
    from components.models.config import ModelConfig
    from components.train.config import PretrainConfig

    steps = int(trial["num_steps"])
    every = max(1, steps // config.num_reports)
    return PretrainConfig(
        model=ModelConfig(depth=trial["depth"], width=trial["width"]),
        strategy="none", num_workers=1, cpus_per_worker=config.cpus_per_trial,
        micro_batch_size=config.batch_size, grad_accum_steps=1, num_steps=steps, learning_rate=float(trial["learning_rate"]),
        min_lr_ratio=config.min_lr_ratio, warmup_steps=min(steps - 1, round(config.warmup_frac * steps)),
        weight_decay=config.weight_decay, seed=int(trial["seed"]),
        eval_every=every, checkpoint_every=every, keep_checkpoints=1,
        eval_batches=math.ceil(config.eval_blocks / config.batch_size), log_every=steps,
    )


def run_trial(trial: dict, config: SweepConfig, tokens_dir: str | Path, output_dir: str | Path,
              report: Callable[[dict], None] | None = None) -> dict[str, float]:
    """Train one trial to its end; returns (and reports last) its final metrics.

    Called again on the same ``output_dir`` after a crash, it resumes from the pretraining
    function's latest checkpoint there (under Tune the trial dir is per Ray session, so a
    trial restored in a new session starts over).
    """
    import torch

    from components.train.loop import train

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, int(config.cpus_per_trial)))
    metrics_path = output_dir / "train_metrics.jsonl"
    offset = metrics_path.stat().st_size if metrics_path.exists() else 0  # a resumed trial re-logs; skip the old
    outcome: dict = {}

    def target():
        try:
            outcome["summary"] = train(pretrain_config(trial, config), tokens_dir, output_dir)
        except BaseException as e:  # noqa: BLE001 - re-raised in the reporting thread below
            outcome["error"] = e

    worker = threading.Thread(target=target, name=f"train-{trial['name']}", daemon=True)
    t0 = time.perf_counter()
    worker.start()
    pending = None
    try:
        while True:
            alive = worker.is_alive()
            records, offset = _new_val_records(metrics_path, offset)
            for record in records:
                if pending is not None and report is not None:
                    report(pending)  # under Tune, raises SystemExit when the scheduler stops this trial
                pending = _report_row(record, trial)
            if not alive:
                break
            time.sleep(0.2)
    except BaseException:
        _interrupt(worker)
        raise
    if "error" in outcome:
        raise outcome["error"]
    summary = outcome["summary"]
    final = pending or {}
    final.update(val_loss=summary["val_loss"], train_loss=summary["loss"], tokens_per_s=summary["tokens_per_s"],
                 step=summary["steps"], train_wall_s=time.perf_counter() - t0, done_training=1.0)
    if report is not None:
        report(final)
    # Checkpoints and the exported model are only for resuming this trial; the sweep keeps metrics.
    for leftover in ("checkpoints", "model"):
        shutil.rmtree(output_dir / leftover, ignore_errors=True)
    return final


class TrialStopped(Exception):
    """Raised inside the training thread when the trial is stopped (ASHA) or fails."""


def _interrupt(worker: threading.Thread, timeout_s: float = 30.0) -> None:
    """Stop the training thread so a reused Tune worker does not keep training a stopped trial.

    The pretraining function has no stop hook (TODO(lead): a ``should_stop`` callback in
    ``components.train.loop.train`` would replace this), so raise an exception in that thread:
    it fires at its next Python bytecode, i.e. within one step of a tiny model.
    """
    import ctypes

    if worker.is_alive() and worker.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(TrialStopped))
        worker.join(timeout_s)


def _new_val_records(path: Path, offset: int) -> tuple[list[dict], int]:
    if not path.exists():
        return [], offset
    with open(path, "rb") as f:
        f.seek(offset)
        chunk = f.read()
    complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written stays for the next poll
    rows = [json.loads(line) for line in complete.decode().splitlines() if line.strip()]
    return [r for r in rows if "val_loss" in r["metrics"]], offset + len(complete)


def _report_row(record: dict, trial: dict) -> dict:
    step, m = record["step"], record["metrics"]
    return {"val_loss": m["val_loss"], "train_loss": m["loss"], "step": float(step),
            "tokens": float(step * trial["num_tokens"] / trial["num_steps"]),
            "progress": step / trial["num_steps"]}


def tune_trainable(params: dict, config_json: str, tokens_dir: str) -> None:
    """Ray Tune function trainable: ``params`` = {"trial": Trial dict, "learning_rate"?: override};
    ``tokens_dir``: the tokens artifact's path or store URI (opened into this node's cache)."""
    from ray import tune

    from flows.engine.store import open_artifact

    trial = dict(params["trial"])
    if "learning_rate" in params:
        trial["learning_rate"] = params["learning_rate"]
    config = SweepConfig.model_validate_json(config_json)
    out = Path(tune.get_context().get_trial_dir()) / "train"
    run_trial(trial, config, open_artifact(tokens_dir), out, report=tune.report)
