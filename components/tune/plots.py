"""The sweep's pictures (matplotlib, Agg): IsoFLOP profiles, the frontier, predicted vs measured."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from components.tune.fit import IsoFlopFit, ParametricFit


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_isoflop(rows: list[dict], fit: IsoFlopFit | None, path: Path) -> Path:
    """Loss vs N per budget, each with its fitted parabola in log N and its vertex."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    budgets = sorted({r["budget_flops"] for r in rows})
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(budgets)))
    for c, color in zip(budgets, colors):
        pts = sorted((r["num_params"], r["val_loss"]) for r in rows if r["budget_flops"] == c)
        n, loss = np.array(pts).T
        ax.scatter(n, loss, color=color, label=f"C = {c:.2g}")
        if fit is not None and c in fit.budgets:
            i = int(np.where(fit.budgets == c)[0][0])
            xs = np.linspace(np.log(n.min()) - 0.3, np.log(n.max()) + 0.3, 100)
            ax.plot(np.exp(xs), np.polyval(fit.parabolas[i], xs), color=color, lw=1)
            ax.scatter([fit.n_opt[i]], [fit.loss_opt[i]], color=color, marker="*", s=150, edgecolor="k")
    ax.set_xscale("log")
    ax.set(xlabel="parameters N", ylabel="validation loss", title="IsoFLOP profiles (★ = fitted optimum)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_frontier(fit: IsoFlopFit | None, parametric: ParametricFit | None, budgets: list[float],
                  predict_budget: float, path: Path, rows: list[dict] = ()) -> Path:
    """N_opt(C) and D_opt(C): IsoFLOP vertices and power laws, the parametric law, up to the prediction
    (with its bootstrap interval); the sweep's runs in grey for scale."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    cs = np.logspace(np.log10(min(budgets)) - 0.2, np.log10(predict_budget) + 0.1, 50)
    key = f"{predict_budget:.3g}"
    for ax, which in zip(axes, ("N", "D")):
        if rows:
            ax.scatter([6.0 * r["num_params"] * r["num_tokens"] for r in rows],
                       [r["num_params"] if which == "N" else r["num_tokens"] for r in rows],
                       color="lightgrey", s=15, label="runs trained")
        for model, color in ((fit, "C0"), (parametric, "C1")):
            ci = model.ci.get(f"{which.lower()}_opt@{key}") if model is not None else None
            if ci:
                ax.plot([predict_budget] * 2, ci, color=color, lw=4, alpha=0.4)
        if fit is not None:
            pts = fit.n_opt if which == "N" else fit.d_opt
            ax.scatter(fit.budgets, pts, color="C0", label="IsoFLOP optima")
            law = fit.n_opt_at(cs) if which == "N" else fit.d_opt_at(cs)
            expo = fit.n_exponent if which == "N" else fit.d_exponent
            ax.plot(cs, law, color="C0", label=f"IsoFLOP fit ∝ C^{expo:.2f}")
        if parametric is not None:
            n_opt, d_opt = parametric.optimum(cs)
            expo = parametric.n_exponent if which == "N" else parametric.d_exponent
            ax.plot(cs, n_opt if which == "N" else d_opt, color="C1", ls="--",
                    label=f"parametric L(N,D) ∝ C^{expo:.2f}")
        ax.axvline(predict_budget, color="grey", ls=":", label=f"prediction C = {predict_budget:.2g} (bar: CI)")
        ax.set_xscale("log"), ax.set_yscale("log")
        ax.set(xlabel="compute C (FLOPs)", ylabel=f"{which}_opt", title=f"compute-optimal {which}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_predicted_vs_measured(rows: list[dict], parametric: ParametricFit, holdout: dict | None,
                               path: Path) -> Path:
    """Each run's measured loss against L(N, D) of the parametric fit; the held-out run marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    measured = np.array([r["val_loss"] for r in rows])
    predicted = parametric.loss([r["num_params"] for r in rows], [r["num_tokens"] for r in rows])
    ax.scatter(predicted, measured, label="sweep runs (fitted)")
    lo, hi = min(measured.min(), predicted.min()), max(measured.max(), predicted.max())
    if holdout is not None:
        ax.scatter([holdout["predicted_loss"]], [holdout["val_loss"]], color="C3", marker="D", s=70,
                   label=f"held-out run (error {100 * holdout['rel_error']:+.1f}%)")
        lo, hi = min(lo, holdout["val_loss"], holdout["predicted_loss"]), max(hi, holdout["val_loss"],
                                                                                holdout["predicted_loss"])
    pad = 0.05 * (hi - lo)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", lw=1, ls="--")
    ax.set(xlabel="predicted loss  E + A/N^α + B/D^β", ylabel="measured validation loss",
           title="parametric fit: predicted vs measured")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
