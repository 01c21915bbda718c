"""The ``tune.sweep`` step: plan → (lr search) → sweep on Ray Tune → fits → held-out check → plots.

Artifact: ``fit.json`` (both fits, intervals, the prediction, the held-out check),
``trials.json`` (every trial's spec and result), ``isoflop.png``, ``frontier.png``,
``predicted_vs_measured.png``. Each trial is an MLflow run nested under this step's run.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from components.artifacts import Tokens
from components.tune.config import SweepConfig
from flows.engine.registry import step_kind


@step_kind("tune.sweep", inputs=("tokens",),
           description="Scaling sweep on Ray Tune (IsoFLOP profiles or an N×D grid of short pretraining runs, "
                       "optional ASHA lr search), resumable; fits N_opt(C)/D_opt(C) and L(N,D) with bootstrap "
                       "intervals, checks a held-out run against the prediction; fit.json + PNG plots.",
           num_cpus=0)  # only drives Tune; the trials hold the CPUs
def run_sweep(ctx, config: SweepConfig) -> dict[str, float]:
    from ray import tune

    from components.tune.plan import plan_trials
    from components.tune.sweep import run_phase, search_lr, storage_root

    t0 = time.time()
    # The trials may run on nodes that share no disk with this one: they open the tokens from its store
    # URI (its local path on a local root) into their node's cache (components.tune.trial.tune_trainable).
    tokens_dir = ctx.input_uri("tokens")
    manifest = Tokens.of(ctx)
    vocab_size, seq_len = manifest.vocab_size, manifest.seq_len
    trials, skipped = plan_trials(config, vocab_size, seq_len)
    # The artifact address hashes config, inputs and code: the same step re-run resumes the same experiment.
    experiment = f"{config.name}-{ctx.address[:16]}"
    callbacks = _callbacks(ctx, config)
    ctx.set_tags({"sweep.mode": config.mode, "sweep.num_trials": len(trials), "sweep.skipped": len(skipped),
                  "sweep.experiment": f"{storage_root(config)}/{experiment}"})

    if config.lr_search is not None:
        best_lr = search_lr(trials, config, tokens_dir, callbacks, experiment)
        trials = [replace(t, learning_rate=best_lr[(t.depth, t.width)]) for t in trials]
    rows = run_phase(experiment, {"trial": tune.grid_search([t.to_dict() for t in trials])},
                     config, tokens_dir, callbacks)
    rows.sort(key=lambda r: (r["budget_flops"] or 0, r["num_params"], r["num_tokens"]))
    for i, r in enumerate(rows):
        ctx.log_metrics({"trial_val_loss": r["val_loss"], "trial_num_params": r["num_params"],
                         "trial_num_tokens": r["num_tokens"]}, step=i)
    sweep_wall_s = time.time() - t0

    predict_budget = config.predict_budget_flops or 10 * _largest_budget(config, rows)
    report = fit_rows(rows, config, predict_budget)
    report.update(mode=config.mode, skipped=skipped, predict_budget_flops=predict_budget,
                  learning_rate_by_shape={f"d{r['depth']}w{r['width']}": r["learning_rate"] for r in rows})
    if config.holdout:
        report["holdout"] = _holdout(report, rows, config, vocab_size, seq_len, tokens_dir, callbacks, experiment)
    report["wall_s"] = {"sweep": sweep_wall_s, "total": time.time() - t0}

    (ctx.output / "trials.json").write_text(json.dumps(rows, indent=1))
    for png in _plots(report, rows, config, predict_budget, ctx.output):
        ctx.log_artifact(png)
    fit_path = ctx.output / "fit.json"
    fit_path.write_text(json.dumps(_jsonable(report), indent=1))
    ctx.log_artifact(fit_path)
    return _headline(report, len(rows), sweep_wall_s)


def _callbacks(ctx, config: SweepConfig) -> list:
    if ctx.run_id is None:
        return []
    from components.tracking.mlflow_tracking import default_tracking_uri
    from components.tune.trial_runs import TrialRuns

    return [TrialRuns(ctx.tracking_uri or default_tracking_uri(), ctx.run_id, config.name)]


def _largest_budget(config: SweepConfig, rows: list[dict]) -> float:
    if config.mode == "isoflop":
        return max(config.budgets_flops)
    return max(6.0 * r["num_params"] * r["num_tokens"] for r in rows)


def fit_rows(rows: list[dict], config: SweepConfig, predict_budget: float) -> dict:
    """Both fits over the sweep's results; a fit the data cannot support is reported with its reason."""
    from components.tune.fit import fit_isoflop, fit_parametric

    n = np.array([r["num_params"] for r in rows], dtype=float)
    d = np.array([r["num_tokens"] for r in rows], dtype=float)
    loss = np.array([r["val_loss"] for r in rows], dtype=float)
    out: dict = {"num_runs": len(rows), "ci_level": config.ci_level, "num_bootstrap": config.num_bootstrap,
                 "param_count": "total" if config.count_embedding_params else "non_embedding"}
    key = f"{predict_budget:.3g}"
    if config.mode == "isoflop":
        budget = np.array([r["budget_flops"] for r in rows], dtype=float)
        try:
            iso = fit_isoflop(budget, n, loss, config.num_bootstrap, config.ci_level, [predict_budget], config.seed)
            n_opt, d_opt = float(iso.n_opt_at(predict_budget)), float(iso.d_opt_at(predict_budget))
            out["isoflop"] = {**iso.to_dict(), "prediction": {
                "budget_flops": predict_budget, "n_opt": n_opt, "d_opt": d_opt, "tokens_per_param": d_opt / n_opt,
                "ci": {k.split("@")[0]: v for k, v in iso.ci.items() if k.endswith("@" + key)}}}
            out["_iso"] = iso
        except ValueError as e:
            out["isoflop"] = {"error": str(e)}
    try:
        par = fit_parametric(n, d, loss, config.huber_delta, num_bootstrap=config.num_bootstrap,
                             ci_level=config.ci_level, predict_budgets=[predict_budget], seed=config.seed)
        n_opt, d_opt = (float(x) for x in par.optimum(predict_budget))
        out["parametric"] = {**par.to_dict(), "prediction": {
            "budget_flops": predict_budget, "n_opt": n_opt, "d_opt": d_opt, "tokens_per_param": d_opt / n_opt,
            "loss": float(par.loss(n_opt, d_opt)),
            "ci": {k.split("@")[0]: v for k, v in par.ci.items() if k.endswith("@" + key)}}}
        residual = loss - par.loss(n, d)
        out["parametric"]["rmse"] = float(np.sqrt(np.mean(residual ** 2)))
        out["_par"] = par
    except ValueError as e:
        out["parametric"] = {"error": str(e)}
    return out


def _holdout(report: dict, rows: list[dict], config: SweepConfig, vocab_size: int, seq_len: int,
             tokens_dir: str, callbacks: list, experiment: str) -> dict:
    """Train the shape nearest the predicted N_opt at a budget above the sweep; compare with L(N, D)."""
    from ray import tune

    from components.tune.plan import make_trial, shape_params
    from components.tune.sweep import run_phase

    par = report.get("_par")
    if par is None:
        return {"error": "no parametric fit to predict from: " + report["parametric"].get("error", "")}
    budget = config.holdout_budget_flops or 1.5 * _largest_budget(config, rows)
    n_target = float(par.optimum(budget)[0])
    sizes = [(s.depth, *shape_params(s, vocab_size, seq_len, config.count_embedding_params)) for s in config.shapes]
    depth, width, n = min(sizes, key=lambda x: abs(np.log(x[2] / n_target)))
    learning_rates = {(r["depth"], r["width"]): r["learning_rate"] for r in rows}
    trial = make_trial(config, depth, width, n, budget / (6.0 * n), budget, config.batch_size * seq_len, "holdout")
    trial = replace(trial, learning_rate=learning_rates.get((depth, width), config.learning_rate))
    row = run_phase(f"{experiment}-holdout", {"trial": tune.grid_search([trial.to_dict()])},
                    config, tokens_dir, callbacks)[0]
    predicted = float(par.loss(row["num_params"], row["num_tokens"]))
    return {**row, "budget_flops": budget, "n_opt_predicted": n_target, "predicted_loss": predicted,
            "abs_error": row["val_loss"] - predicted, "rel_error": (row["val_loss"] - predicted) / row["val_loss"]}


def _plots(report: dict, rows: list[dict], config: SweepConfig, predict_budget: float, out: Path) -> list[Path]:
    from components.tune.plots import (
        plot_frontier,
        plot_isoflop,
        plot_predicted_vs_measured,
    )

    iso, par = report.get("_iso"), report.get("_par")
    paths = []
    if config.mode == "isoflop":
        paths.append(plot_isoflop(rows, iso, out / "isoflop.png"))
    budgets = sorted({6.0 * r["num_params"] * r["num_tokens"] for r in rows}) if config.mode == "grid" \
        else sorted(config.budgets_flops)
    if iso is not None or par is not None:
        paths.append(plot_frontier(iso, par, budgets, predict_budget, out / "frontier.png", rows))
    if par is not None:
        holdout = report.get("holdout") if "predicted_loss" in report.get("holdout", {}) else None
        paths.append(plot_predicted_vs_measured(rows, par, holdout, out / "predicted_vs_measured.png"))
    return paths


def _jsonable(report: dict) -> dict:
    return {k: v for k, v in report.items() if not k.startswith("_")}


def _headline(report: dict, num_trials: int, sweep_wall_s: float) -> dict[str, float]:
    iso, par, hold = report.get("isoflop", {}), report.get("parametric", {}), report.get("holdout", {})
    out: dict[str, float] = {}
    if "n_exponent" in iso:
        out["n_opt_exponent_isoflop"] = iso["n_exponent"]
        out["tokens_per_param_isoflop"] = iso["prediction"]["tokens_per_param"]
    if "alpha" in par:
        out.update(n_opt_exponent_parametric=par["n_exponent"], alpha=par["alpha"], beta=par["beta"], E=par["E"],
                   tokens_per_param_parametric=par["prediction"]["tokens_per_param"],
                   predicted_loss=par["prediction"]["loss"])
    if "rel_error" in hold:
        out["holdout_rel_error"] = hold["rel_error"]
    out.update(num_trials=float(num_trials), sweep_wall_s=sweep_wall_s)
    return out
