"""Drift detectors fire on shifted samples and stay quiet on same-distribution ones."""
import numpy as np
import pytest

from components.eval.drift import mmd_test, psi, psi_projections, rate_shift
from components.eval.drift_monitor import DriftConfig, DriftMonitor, Observation

SEEDS = range(30)


def test_psi_fires_on_shift_quiet_on_same():
    fired_same = fired_shift = 0
    for s in SEEDS:
        rng = np.random.default_rng(s)
        ref = rng.poisson(12, 300)
        fired_same += psi(ref, rng.poisson(12, 300)) > 0.25
        fired_shift += psi(ref, rng.poisson(20, 300)) > 0.25
    assert fired_shift == len(SEEDS)
    assert fired_same / len(SEEDS) <= 0.05


def test_mmd_false_alarm_rate_bounded_and_power_on_shift():
    alpha, false_alarms, detections = 0.05, 0, 0
    for s in SEEDS:
        rng = np.random.default_rng(100 + s)
        ref = rng.standard_normal((60, 16))
        _, p_same = mmd_test(ref, rng.standard_normal((60, 16)), num_permutations=100, seed=s)
        shifted = rng.standard_normal((60, 16))
        shifted[:, :4] += 0.8  # a topic shift in a few embedding directions
        _, p_shift = mmd_test(ref, shifted, num_permutations=100, seed=s)
        false_alarms += p_same < alpha
        detections += p_shift < alpha
    # permutation test: P(false alarm) <= alpha; allow binomial slack over 30 seeds
    assert false_alarms / len(SEEDS) <= 0.15
    assert detections == len(SEEDS)


def test_projection_psi_and_rate_shift():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((400, 32))
    assert psi_projections(ref, rng.standard_normal((400, 32))) < 0.25
    assert psi_projections(ref, rng.standard_normal((400, 32)) + 0.5) > 0.25
    assert rate_shift(10, 200, 12, 200) < 2
    assert rate_shift(10, 200, 60, 200) > 4


def _obs(rng, shift=False):
    vocab = [f"w{i}" for i in range(60)] if not shift else [f"new{i}" for i in range(60)]
    n = int(rng.poisson(25 if shift else 8)) + 1
    emb = rng.standard_normal(8) + (1.5 if shift else 0.0)
    refused = rng.random() < (0.5 if shift else 0.05)
    return Observation(query_len=n, response_len=int(rng.poisson(40)), refused=refused,
                       words=list(rng.choice(vocab, n)), embedding=emb)


@pytest.mark.parametrize("shift", [False, True])
def test_monitor_end_to_end(shift):
    cfg = DriftConfig(reference_size=100, window_size=100, check_every=100, mmd_permutations=100)
    quiet_runs = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        mon = DriftMonitor(cfg)
        for _ in range(100):
            assert mon.observe(_obs(rng)) == []
        results = []
        for _ in range(100):
            results += mon.observe(_obs(rng, shift))
        by = {r.feature: r for r in results}
        assert {"query_length", "response_length", "refusal_rate", "unknown_word_rate", "query_embedding"} <= set(by)
        if shift:
            assert all(by[f].drifted for f in ("query_length", "refusal_rate", "unknown_word_rate", "query_embedding"))
            assert not by["response_length"].drifted  # outputs unchanged: only inputs drifted
        else:
            quiet_runs.append(not any(r.drifted for r in results))
    if not shift:
        assert sum(quiet_runs) >= 4  # at most one false alarm over 5 seeds × 5 detectors
