"""Drift detectors: a reference window vs the current window, each with a threshold.

- ``psi``: Population Stability Index on a scalar feature (query length, response
  length, judge score), bins from reference quantiles. Rule of thumb: > 0.2 is a shift.
- ``mmd_test``: kernel two-sample test on embeddings (RBF kernel, median-heuristic width,
  permutation p-value). Its false-alarm rate is the chosen ``alpha`` by construction.
- ``psi_projections``: PSI on random 1-D projections of embeddings (max over projections);
  cheaper than MMD for big windows.
- ``rate_shift``: a two-proportion z-test for rates (refusals, unknown words).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DriftResult:
    feature: str
    method: str
    statistic: float
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int

    def message(self) -> str:
        rel = ">" if self.drifted else "<="
        return (f"drift[{self.feature}] {self.method}={self.statistic:.4f} {rel} threshold {self.threshold} "
                f"(reference n={self.n_reference}, current n={self.n_current})")


def _bin(edges: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Bin 2i+1 holds values equal to edge i, bin 2i values strictly between edges i-1 and i,
    so discrete features (lengths) with heavy ties, even a constant reference, still separate."""
    i = np.searchsorted(edges, x, side="left")
    equal = (i < len(edges)) & (edges[np.minimum(i, len(edges) - 1)] == x)
    return 2 * i + equal


def psi(reference: np.ndarray, current: np.ndarray, num_bins: int = 10) -> float:
    """PSI with at most ``num_bins`` quantile bins and ~20 samples per bin of the smaller window,
    and a 0.5 pseudo-count per bin: without both, small windows read as drift from noise alone."""
    reference, current = np.asarray(reference, float), np.asarray(current, float)
    if reference.size == 0 or current.size == 0:
        raise ValueError("psi needs non-empty reference and current samples")
    num_bins = max(2, min(num_bins, min(reference.size, current.size) // 20))
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, num_bins + 1)[1:-1]))
    k = 2 * len(edges) + 1
    ref_counts = np.bincount(_bin(edges, reference), minlength=k) + 0.5
    cur_counts = np.bincount(_bin(edges, current), minlength=k) + 0.5
    p, q = ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def psi_projections(reference: np.ndarray, current: np.ndarray, num_projections: int = 16,
                    num_bins: int = 10, seed: int = 0) -> float:
    """Max PSI over fixed random unit projections of the embedding vectors."""
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((reference.shape[1], num_projections))
    dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
    r, c = reference @ dirs, current @ dirs
    return max(psi(r[:, j], c[:, j], num_bins) for j in range(num_projections))


def _sq_dists(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.maximum((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T, 0.0)


def mmd2_unbiased(k: np.ndarray, n: int) -> float:
    """Unbiased MMD² from the joint kernel matrix of [x; y] with |x| = n."""
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    m = k.shape[0] - n
    sxx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(sxx + syy - 2 * kxy.mean())


def mmd_test(reference: np.ndarray, current: np.ndarray, num_permutations: int = 200,
             seed: int = 0) -> tuple[float, float]:
    """(MMD², permutation p-value) for reference vs current embeddings."""
    x, y = np.asarray(reference, float), np.asarray(current, float)
    if len(x) < 2 or len(y) < 2:
        raise ValueError("mmd_test needs at least 2 samples in each window")
    z = np.concatenate([x, y])
    d = _sq_dists(z, z)
    bandwidth = np.median(d[np.triu_indices_from(d, 1)]) or 1.0
    k = np.exp(-d / bandwidth)
    n = len(x)
    observed = mmd2_unbiased(k, n)
    rng = np.random.default_rng(seed)
    exceed = 0
    for _ in range(num_permutations):
        idx = rng.permutation(len(z))
        exceed += mmd2_unbiased(k[np.ix_(idx, idx)], n) >= observed
    return observed, (exceed + 1) / (num_permutations + 1)


def rate_shift(ref_hits: int, ref_n: int, cur_hits: int, cur_n: int) -> float:
    """|z| of a two-proportion z-test (0 when both rates are 0 or 1)."""
    p = (ref_hits + cur_hits) / (ref_n + cur_n)
    se = math.sqrt(p * (1 - p) * (1 / ref_n + 1 / cur_n))
    return 0.0 if se == 0 else abs(cur_hits / cur_n - ref_hits / ref_n) / se
