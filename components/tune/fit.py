"""Scaling-law fits with bootstrap confidence intervals (numpy + scipy, no torch).

Two estimators of the compute-optimal frontier, as in Hoffmann et al. (2022):

* IsoFLOP profiles (their approach 2): per budget C, a parabola of loss in log N; its
  vertex is N_opt(C). Power laws N_opt = k_N·C^a and D_opt = k_D·C^b through the vertices.
  Intervals: residual bootstrap with residuals pooled over all budgets (a budget with
  only 3 sizes fits its parabola exactly and has no residual of its own).
* Parametric (their approach 3): L(N, D) = E + A/N^α + B/D^β, fitted as
  log L ≈ LSE(a − α·log N, b − β·log D, e) with a Huber loss on the residuals, L-BFGS-B
  from the best points of a coarse grid of initialisations. Intervals: case bootstrap.
  Its optimum under C = 6ND is closed form: N_opt = G·(C/6)^(β/(α+β)), D_opt = (C/6)^(α/(α+β))/G,
  G = (αA/(βB))^(1/(α+β)).
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field

import numpy as np


def _one_blas_thread(fn):
    """Run ``fn`` with BLAS on one thread: the fits make thousands of tiny BLAS calls, and
    OpenBLAS's threads spin-wait on them — 20× slower on 2 busy cores than one thread."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import scipy.optimize  # noqa: F401  (load its OpenBLAS first: limits apply to loaded libraries only)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)
    return wrapper


# -- IsoFLOP profiles ------------------------------------------------------------------------
@dataclass
class IsoFlopFit:
    budgets: np.ndarray            # nominal budgets C with a usable parabola (curving upwards)
    parabolas: np.ndarray          # (len(budgets), 3) polyfit coefficients of loss in ln N
    n_opt: np.ndarray
    d_opt: np.ndarray
    loss_opt: np.ndarray
    interior: np.ndarray           # vertex inside the budget's range of N (else extrapolated)
    n_exponent: float              # a in N_opt = k_N·C^a
    n_coef: float
    d_exponent: float              # b in D_opt = k_D·C^b
    d_coef: float
    dropped: list[str] = field(default_factory=list)
    ci: dict[str, list[float]] = field(default_factory=dict)
    ci_error: str | None = None    # why there are no intervals, when there are none

    def n_opt_at(self, c):
        return self.n_coef * np.asarray(c, dtype=float) ** self.n_exponent

    def d_opt_at(self, c):
        return self.d_coef * np.asarray(c, dtype=float) ** self.d_exponent

    def to_dict(self) -> dict:
        return {
            "n_exponent": self.n_exponent, "n_coef": self.n_coef,
            "d_exponent": self.d_exponent, "d_coef": self.d_coef,
            "budgets": [{"budget_flops": float(c), "n_opt": float(n), "d_opt": float(d), "loss_opt": float(lo),
                         "tokens_per_param": float(d / n), "interior": bool(i), "parabola_lnN": [float(x) for x in p]}
                        for c, n, d, lo, i, p in zip(self.budgets, self.n_opt, self.d_opt, self.loss_opt,
                                                     self.interior, self.parabolas)],
            "dropped_budgets": self.dropped, "ci": self.ci, "ci_error": self.ci_error,
        }


def _power_law(c: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(exponent, coefficient) of y = coef·c^exponent by least squares in log-log."""
    slope, intercept = np.polyfit(np.log(c), np.log(y), 1)
    return float(slope), float(np.exp(intercept))


def _isoflop_core(budgets, groups) -> tuple | None:
    """Parabola per budget + power laws; None if fewer than 2 budgets curve upwards."""
    keep, coefs, n_opt, loss_opt, interior, dropped = [], [], [], [], [], []
    for c, (ln_n, loss) in zip(budgets, groups):
        if len(np.unique(ln_n)) < 3:
            dropped.append(f"C={c:.3g}: fewer than 3 model sizes")
            continue
        p = np.polyfit(ln_n, loss, 2)
        if p[0] <= 0:
            dropped.append(f"C={c:.3g}: loss does not curve upwards in log N (no minimum); widen the size range")
            continue
        v = -p[1] / (2 * p[0])
        span = ln_n.max() - ln_n.min()
        if not ln_n.min() - span <= v <= ln_n.max() + span:
            dropped.append(f"C={c:.3g}: the parabola's minimum lies far outside the sizes trained; "
                           "add sizes towards it")
            continue
        keep.append(c), coefs.append(p), n_opt.append(np.exp(v)), loss_opt.append(np.polyval(p, v))
        interior.append(ln_n.min() <= v <= ln_n.max())
    if len(keep) < 2:
        return None
    keep, n_opt = np.array(keep), np.array(n_opt)
    d_opt = keep / (6.0 * n_opt)
    return keep, np.array(coefs), n_opt, d_opt, np.array(loss_opt), np.array(interior), dropped


@_one_blas_thread
def fit_isoflop(budget: np.ndarray, n: np.ndarray, loss: np.ndarray, num_bootstrap: int = 200,
                ci_level: float = 0.9, predict_budgets: list[float] = (), seed: int = 0) -> IsoFlopFit:
    """Fit IsoFLOP parabolas and the N_opt/D_opt power laws; ``budget`` labels each run's profile."""
    budget, n, loss = (np.asarray(x, dtype=float) for x in (budget, n, loss))
    budgets = np.unique(budget)
    groups = [(np.log(n[budget == c]), loss[budget == c]) for c in budgets]
    core = _isoflop_core(budgets, groups)
    if core is None:
        raise ValueError("IsoFLOP fit needs at least 2 budgets whose loss has a minimum over N; "
                         f"got budgets {budgets.tolist()}. Add model sizes on both sides of the optimum")
    keep, coefs, n_opt, d_opt, loss_opt, interior, dropped = core
    a, k_n = _power_law(keep, n_opt)
    b, k_d = _power_law(keep, d_opt)
    fit = IsoFlopFit(keep, coefs, n_opt, d_opt, loss_opt, interior, a, k_n, b, k_d, dropped)
    if num_bootstrap > 0:
        try:
            fit.ci = _isoflop_bootstrap(budgets, groups, num_bootstrap, ci_level, list(predict_budgets), seed)
        except ValueError as e:  # too few sizes to estimate the noise: the fit stands, without intervals
            fit.ci_error = str(e)
    return fit


def _isoflop_bootstrap(budgets, groups, num_bootstrap, ci_level, predict_budgets, seed) -> dict:
    rng = np.random.default_rng(seed)
    fitted, resid, dof = [], [], 0
    for ln_n, loss in groups:
        p = np.polyfit(ln_n, loss, 2) if len(np.unique(ln_n)) >= 3 else np.zeros(3)
        fitted.append(np.polyval(p, ln_n))
        resid.append(loss - fitted[-1])
        dof += max(len(ln_n) - 3, 0)
    pooled = np.concatenate(resid)
    if dof == 0:
        raise ValueError("bootstrap needs more model sizes per budget than 3 in at least one budget "
                         "(parabolas through 3 points leave no residuals); add sizes or set num_bootstrap=0")
    pooled = pooled * np.sqrt(len(pooled) / dof)  # residuals underestimate the noise by dof/n
    samples: dict[str, list[float]] = {"n_exponent": [], "d_exponent": [], "n_coef": [], "d_coef": []}
    for c in predict_budgets:
        samples[f"n_opt@{c:.3g}"], samples[f"d_opt@{c:.3g}"], samples[f"tokens_per_param@{c:.3g}"] = [], [], []
    for _ in range(num_bootstrap):
        boot = [(ln_n, f + rng.choice(pooled, size=len(f))) for (ln_n, _), f in zip(groups, fitted)]
        core = _isoflop_core(budgets, boot)
        if core is None:
            continue
        keep, _, n_opt, d_opt, *_ = core
        a, k_n = _power_law(keep, n_opt)
        b, k_d = _power_law(keep, d_opt)
        samples["n_exponent"].append(a), samples["n_coef"].append(k_n)
        samples["d_exponent"].append(b), samples["d_coef"].append(k_d)
        for c in predict_budgets:
            samples[f"n_opt@{c:.3g}"].append(k_n * c ** a)
            samples[f"d_opt@{c:.3g}"].append(k_d * c ** b)
            samples[f"tokens_per_param@{c:.3g}"].append(k_d * c ** b / (k_n * c ** a))
    return _intervals(samples, ci_level)


# -- parametric L(N, D) ------------------------------------------------------------------------
@dataclass
class ParametricFit:
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float
    ci: dict[str, list[float]] = field(default_factory=dict)

    def loss(self, n, d):
        n, d = np.asarray(n, dtype=float), np.asarray(d, dtype=float)
        return self.E + self.A / n ** self.alpha + self.B / d ** self.beta

    @property
    def n_exponent(self) -> float:
        return self.beta / (self.alpha + self.beta)

    @property
    def d_exponent(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def optimum(self, c):
        """(N_opt, D_opt) minimising L under 6·N·D = C."""
        return _optimum(np.array([np.log(self.E), np.log(self.A), np.log(self.B), self.alpha, self.beta]), c)

    @property
    def at_bounds(self) -> list[str]:
        """Exponents stuck at a bound: the data do not pin that term down (say so, don't hide it)."""
        lo, hi = _BOUNDS[3]
        return [f"{k}={v:.3g} is at its bound [{lo}, {hi}]: the sweep's range does not determine it"
                for k, v in (("alpha", self.alpha), ("beta", self.beta)) if v <= lo * 1.01 or v >= hi * 0.99]

    def to_dict(self) -> dict:
        return {"E": self.E, "A": self.A, "B": self.B, "alpha": self.alpha, "beta": self.beta,
                "n_exponent": self.n_exponent, "d_exponent": self.d_exponent,
                "huber_objective": self.objective, "warnings": self.at_bounds, "ci": self.ci}


def _optimum(theta: np.ndarray, c):
    _, a, b, alpha, beta = theta
    g = (alpha * np.exp(a) / (beta * np.exp(b))) ** (1.0 / (alpha + beta))
    c6 = np.asarray(c, dtype=float) / 6.0
    return g * c6 ** (beta / (alpha + beta)), c6 ** (alpha / (alpha + beta)) / g


def _objective(theta, ln_n, ln_d, ln_loss, delta):
    """Huber(LSE(a − α ln N, b − β ln D, e) − ln L) / δ summed over runs, and its gradient."""
    e, a, b, alpha, beta = theta
    terms = np.stack([a - alpha * ln_n, b - beta * ln_d, np.full_like(ln_n, e)])
    top = terms.max(axis=0)
    w = np.exp(terms - top)
    total = w.sum(axis=0)
    r = top + np.log(total) - ln_loss
    w /= total
    small = np.abs(r) <= delta
    value = np.where(small, 0.5 * r * r / delta, np.abs(r) - 0.5 * delta).sum()
    dr = np.where(small, r / delta, np.sign(r))
    grad = np.array([(dr * w[2]).sum(), (dr * w[0]).sum(), (dr * w[1]).sum(),
                     -(dr * w[0] * ln_n).sum(), -(dr * w[1] * ln_d).sum()])
    return value, grad


# Coarse grid of initialisations (Hoffmann et al. use a similar grid); evaluated vectorised,
# then L-BFGS-B starts from the best few.
_GRID = np.array(list(itertools.product(
    np.linspace(-1.0, 2.5, 8),        # e = ln E
    np.linspace(0.0, 25.0, 6),        # a = ln A
    np.linspace(0.0, 25.0, 6),        # b = ln B
    np.linspace(0.05, 1.5, 6),        # α
    np.linspace(0.05, 1.5, 6),        # β
)))
_BOUNDS = [(None, None)] * 3 + [(1e-3, 5.0)] * 2


def _grid_values(ln_n, ln_d, ln_loss, delta) -> np.ndarray:
    g = _GRID
    t = np.stack([g[:, 1:2] - g[:, 3:4] * ln_n, g[:, 2:3] - g[:, 4:5] * ln_d,
                  np.broadcast_to(g[:, 0:1], (len(g), len(ln_n)))])
    r = np.logaddexp.reduce(t, axis=0) - ln_loss
    return np.where(np.abs(r) <= delta, 0.5 * r * r / delta, np.abs(r) - 0.5 * delta).sum(axis=1)


def _fit_from(starts, ln_n, ln_d, ln_loss, delta) -> tuple[np.ndarray, float]:
    from scipy.optimize import minimize

    best_theta, best_value = None, np.inf
    for x0 in starts:
        res = minimize(_objective, x0, args=(ln_n, ln_d, ln_loss, delta), jac=True, method="L-BFGS-B",
                       bounds=_BOUNDS, options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-10})
        if np.isfinite(res.fun) and res.fun < best_value:
            best_theta, best_value = res.x, float(res.fun)
    return best_theta, best_value


@_one_blas_thread
def fit_parametric(n, d, loss, huber_delta: float = 1e-3, num_starts: int = 8, num_bootstrap: int = 200,
                   ci_level: float = 0.9, predict_budgets: list[float] = (), seed: int = 0) -> ParametricFit:
    """Fit L(N, D) = E + A/N^α + B/D^β by Huber loss on log L; bootstrap CIs by resampling runs."""
    n, d, loss = (np.asarray(x, dtype=float) for x in (n, d, loss))
    if len(n) < 6:
        raise ValueError(f"parametric fit has 5 parameters and needs at least 6 runs, got {len(n)}; add trials")
    ln_n, ln_d, ln_loss = np.log(n), np.log(d), np.log(loss)
    order = np.argsort(_grid_values(ln_n, ln_d, ln_loss, huber_delta))
    theta, value = _fit_from(_GRID[order[:num_starts]], ln_n, ln_d, ln_loss, huber_delta)
    fit = ParametricFit(float(np.exp(theta[0])), float(np.exp(theta[1])), float(np.exp(theta[2])),
                        float(theta[3]), float(theta[4]), value)
    if num_bootstrap > 0:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # wild resamples: kept, then percentiles
            fit.ci = _parametric_bootstrap(theta, order, ln_n, ln_d, ln_loss, huber_delta, num_bootstrap, ci_level,
                                           predict_budgets, seed)
    return fit


def _parametric_bootstrap(theta, order, ln_n, ln_d, ln_loss, huber_delta, num_bootstrap, ci_level,
                          predict_budgets, seed) -> dict:
    """Case bootstrap: refit on runs drawn with replacement; percentile intervals."""
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {k: [] for k in ("E", "A", "B", "alpha", "beta", "n_exponent", "d_exponent")}
    for c in predict_budgets:
        for k in ("n_opt", "d_opt", "tokens_per_param", "loss_opt"):
            samples[f"{k}@{c:.3g}"] = []
    for _ in range(num_bootstrap):
        idx = rng.integers(0, len(ln_n), len(ln_n))
        # Start from the full-data optimum and the best grid point: cheap, and rarely worse than more.
        t, _ = _fit_from([theta, _GRID[order[0]]], ln_n[idx], ln_d[idx], ln_loss[idx], huber_delta)
        if t is None:
            continue
        e, a, b, alpha, beta = t
        for k, v in zip(("E", "A", "B", "alpha", "beta"), (np.exp(e), np.exp(a), np.exp(b), alpha, beta)):
            samples[k].append(v)
        samples["n_exponent"].append(beta / (alpha + beta)), samples["d_exponent"].append(alpha / (alpha + beta))
        for c in predict_budgets:
            n_opt, d_opt = _optimum(t, c)
            samples[f"n_opt@{c:.3g}"].append(n_opt), samples[f"d_opt@{c:.3g}"].append(d_opt)
            samples[f"tokens_per_param@{c:.3g}"].append(d_opt / n_opt)
            samples[f"loss_opt@{c:.3g}"].append(np.exp(e) + np.exp(a) / n_opt ** alpha + np.exp(b) / d_opt ** beta)
    return _intervals(samples, ci_level)


def _intervals(samples: dict[str, list[float]], level: float) -> dict[str, list[float]]:
    """Percentile intervals [lo, hi] at ``level``; keys whose every resample failed are left out."""
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {k: [float(np.percentile(v, lo)), float(np.percentile(v, hi))] for k, v in samples.items() if len(v)}
