"""The sweep's plots render from fits of a synthetic IsoFLOP sweep (files exist and hold a picture)."""
from __future__ import annotations

import numpy as np

from components.tune.fit import fit_isoflop, fit_parametric
from components.tune.plots import (
    plot_frontier,
    plot_isoflop,
    plot_predicted_vs_measured,
)


def test_plots_render(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for c in (1e18, 1e19, 1e20):
        for n in np.logspace(7.5, 9.5, 6):
            d = c / (6 * n)
            loss = (1.69 + 406.4 / n ** 0.34 + 410.7 / d ** 0.28) * np.exp(rng.normal(0, 0.005))
            rows.append({"budget_flops": c, "num_params": n, "num_tokens": d, "val_loss": loss})
    b, n, d, loss = (np.array([r[k] for r in rows]) for k in ("budget_flops", "num_params", "num_tokens", "val_loss"))
    iso = fit_isoflop(b, n, loss, num_bootstrap=10, predict_budgets=[1e21])
    par = fit_parametric(n, d, loss, num_bootstrap=5, predict_budgets=[1e21])
    holdout = {"val_loss": 2.2, "predicted_loss": 2.25, "rel_error": -0.02}
    paths = [plot_isoflop(rows, iso, tmp_path / "iso.png"),
             plot_frontier(iso, par, [1e18, 1e20], 1e21, tmp_path / "frontier.png", rows),
             plot_predicted_vs_measured(rows, par, holdout, tmp_path / "pvm.png")]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
    # Chinchilla's own law: the IsoFLOP vertices lie inside the sizes swept here.
    assert iso.interior.all()
