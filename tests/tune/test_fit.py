"""The scaling-law fits recover known laws from noisy synthetic runs, with honest intervals.

Tolerances are stated per test; noise levels are like a real sweep's (≈1% on loss).
Bootstrap counts are small to keep this fast; coverage is checked over several seeds.
"""
from __future__ import annotations

import numpy as np
import pytest

from components.tune.fit import fit_isoflop, fit_parametric

# Hoffmann et al. (2022), approach 3: the law the parametric fit must recover.
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def chinchilla_runs(seed: int, noise: float = 0.01):
    """6 sizes × 6 token counts from the Chinchilla law, loss × lognormal(0, noise)."""
    rng = np.random.default_rng(seed)
    n = np.repeat(np.logspace(7, 9, 6), 6)
    d = np.tile(np.logspace(8.5, 11, 6), 6)
    c = CHINCHILLA
    loss = (c["E"] + c["A"] / n ** c["alpha"] + c["B"] / d ** c["beta"]) * np.exp(rng.normal(0, noise, n.size))
    return n, d, loss


def test_parametric_recovers_chinchilla():
    n, d, loss = chinchilla_runs(seed=0)
    fit = fit_parametric(n, d, loss, num_bootstrap=0)
    # Tolerances: exponents ±0.05, E ±10% at 1% loss noise over 2 decades of N and D.
    assert fit.alpha == pytest.approx(CHINCHILLA["alpha"], abs=0.05)
    assert fit.beta == pytest.approx(CHINCHILLA["beta"], abs=0.05)
    assert fit.E == pytest.approx(CHINCHILLA["E"], rel=0.10)
    true_a = CHINCHILLA["beta"] / (CHINCHILLA["alpha"] + CHINCHILLA["beta"])
    assert fit.n_exponent == pytest.approx(true_a, abs=0.05)
    # The fitted surface predicts held-out points (twice the largest D) within 2%.
    grid_n, grid_d = np.array([3e7, 3e8]), np.array([2e11, 2e11])
    c = CHINCHILLA
    truth = c["E"] + c["A"] / grid_n ** c["alpha"] + c["B"] / grid_d ** c["beta"]
    np.testing.assert_allclose(fit.loss(grid_n, grid_d), truth, rtol=0.02)


def test_parametric_optimum_is_constrained_minimum():
    n, d, loss = chinchilla_runs(seed=1, noise=0.0)
    fit = fit_parametric(n, d, loss, num_bootstrap=0)
    budget = 1e22
    n_opt, d_opt = fit.optimum(budget)
    assert 6 * n_opt * d_opt == pytest.approx(budget, rel=1e-9)
    # Moving N either way along the isoFLOP line raises the loss.
    for factor in (0.8, 1.25):
        assert fit.loss(n_opt * factor, d_opt / factor) > fit.loss(n_opt, d_opt)
    # Chinchilla's famous ~20 tokens/param at ~1e23 FLOPs from its own law's scale (order of magnitude).
    assert 5 < d_opt / n_opt < 100


def test_parametric_bootstrap_covers_truth_in_most_seeds():
    hits = {"alpha": 0, "beta": 0}
    seeds = range(5)
    for seed in seeds:
        n, d, loss = chinchilla_runs(seed=seed)
        fit = fit_parametric(n, d, loss, num_bootstrap=20, ci_level=0.9, seed=seed)
        for k in hits:
            lo, hi = fit.ci[k]
            hits[k] += lo <= CHINCHILLA[k] <= hi
    assert all(h >= 3 for h in hits.values()), hits


# -- IsoFLOP -------------------------------------------------------------------------------
TRUE_A, TRUE_K = 0.5, 0.08  # N_opt(C) = 0.08·C^0.5 → D_opt = C^0.5 / (6·0.08) ≈ 2.1·C^0.5, 26 tokens/param


def isoflop_runs(seed: int, noise: float = 0.005, sizes_per_budget: int = 7):
    """Per budget, loss = L*(C) + 0.05·(ln N − ln N_opt(C))² + noise at the sizes nearest N_opt."""
    rng = np.random.default_rng(seed)
    sizes = np.logspace(4, 8, 25)
    rows = []
    for c in np.logspace(13, 16, 4):
        n_opt = TRUE_K * c ** TRUE_A
        near = sizes[np.argsort(np.abs(np.log(sizes) - np.log(n_opt)))[:sizes_per_budget]]
        for n in near:
            rows.append((c, n, 2.0 + 50 * c ** -0.1 + 0.05 * np.log(n / n_opt) ** 2 + rng.normal(0, noise)))
    return map(np.array, zip(*rows))


def test_isoflop_recovers_power_laws():
    budget, n, loss = isoflop_runs(seed=0)
    fit = fit_isoflop(budget, n, loss, num_bootstrap=0)
    # Tolerances: exponents ±0.03, N_opt at a budget 10× above the sweep within 25%.
    assert fit.n_exponent == pytest.approx(TRUE_A, abs=0.03)
    assert fit.d_exponent == pytest.approx(1 - TRUE_A, abs=0.03)
    assert float(fit.n_opt_at(1e17)) == pytest.approx(TRUE_K * 1e17 ** TRUE_A, rel=0.25)
    assert len(fit.budgets) == 4 and fit.interior.all()


def test_isoflop_bootstrap_covers_truth_in_most_seeds():
    hits = 0
    for seed in range(6):
        budget, n, loss = isoflop_runs(seed=seed)
        fit = fit_isoflop(budget, n, loss, num_bootstrap=100, ci_level=0.9, predict_budgets=[1e17], seed=seed)
        lo, hi = fit.ci["n_exponent"]
        hits += lo <= TRUE_A <= hi
        assert "tokens_per_param@1e+17" in fit.ci
    assert hits >= 4, hits


def test_isoflop_drops_budgets_without_a_minimum():
    budget, n, loss = isoflop_runs(seed=0, noise=0.0)
    flat = budget == budget.max()
    loss = loss.copy()
    loss[flat] = 5.0 - 0.1 * np.log(n[flat])  # monotone: no minimum in range
    fit = fit_isoflop(budget, n, loss, num_bootstrap=0)
    assert len(fit.budgets) == 3
    assert any("C=1e+16" in why for why in fit.dropped)


def test_isoflop_needs_two_usable_budgets():
    with pytest.raises(ValueError, match="at least 2 budgets"):
        fit_isoflop([1e15] * 3, [1e5, 2e5, 4e5], [3.0, 2.9, 3.1], num_bootstrap=0)
