"""A windowed drift monitor for live traffic: freeze a reference window, compare every
``check_every`` observations against the latest ``window_size`` ones.

Inputs: query length, query embedding (MMD permutation test), unknown-word rate (words
absent from the reference vocabulary). Outputs: response length, refusal rate, judge score.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from components.config import Config
from components.eval.drift import DriftResult, mmd_test, psi, rate_shift


class DriftConfig(Config):
    reference_size: int = Field(200, ge=10, description="first N sampled requests form the reference window")
    window_size: int = Field(200, ge=10, description="current window: the latest N sampled requests")
    check_every: int = Field(50, ge=1, description="run the detectors every N new observations")
    psi_threshold: float = Field(0.25, gt=0, description="PSI above this is drift (0.1 slight, 0.25 major)")
    psi_bins: int = Field(10, ge=2, description="PSI bins (reference quantiles)")
    mmd_alpha: float = Field(0.01, gt=0, lt=1, description="embedding MMD permutation p-value below this is drift")
    mmd_permutations: int = Field(200, ge=20, description="permutations for the MMD p-value")
    rate_z_threshold: float = Field(4.0, gt=0, description="|z| of a rate change above this is drift")
    min_judged: int = Field(20, ge=2, description="judge-score drift needs this many judged samples per window")


@dataclass
class Observation:
    query_len: int
    response_len: int
    refused: bool
    words: list[str]
    embedding: np.ndarray | None = None
    judge_score: float | None = None


class DriftMonitor:
    def __init__(self, config: DriftConfig):
        self.config = config
        self.reference: list[Observation] = []
        self.current: deque[Observation] = deque(maxlen=config.window_size)
        self.vocab: set[str] | None = None
        self._since_check = 0
        self._check_seed = 0

    @property
    def has_reference(self) -> bool:
        return len(self.reference) >= self.config.reference_size

    def set_reference(self, observations: list[Observation]) -> None:
        """Use an explicit reference (e.g. the eval set or last week's traffic)."""
        if len(observations) < 10:
            raise ValueError(f"a drift reference needs at least 10 observations, got {len(observations)}")
        self.reference = list(observations)
        half = len(self.reference) // 2
        # Vocabulary from the first half; the second half gives the reference unknown-word rate,
        # so reference and current are both "new text vs a fixed vocabulary".
        self.vocab = {w for o in self.reference[:half] for w in o.words}

    def observe(self, obs: Observation) -> list[DriftResult]:
        """Add one observation; returns detector results when a check ran, else []."""
        if not self.has_reference:
            self.reference.append(obs)
            if self.has_reference:
                self.set_reference(self.reference)
            return []
        self.current.append(obs)
        self._since_check += 1
        if len(self.current) < self.config.window_size or self._since_check < self.config.check_every:
            return []
        self._since_check = 0
        return self.check()

    def _oov(self, obs_list) -> tuple[int, int]:
        hits = total = 0
        for o in obs_list:
            total += len(o.words)
            hits += sum(w not in self.vocab for w in o.words)
        return hits, max(total, 1)

    def check(self) -> list[DriftResult]:
        c, ref, cur = self.config, self.reference, list(self.current)
        nr, nc = len(ref), len(cur)
        out: list[DriftResult] = []

        def add_psi(name, r, k):
            s = psi(np.array(r, float), np.array(k, float), c.psi_bins)
            out.append(DriftResult(name, "psi", s, c.psi_threshold, s > c.psi_threshold, len(r), len(k)))

        add_psi("query_length", [o.query_len for o in ref], [o.query_len for o in cur])
        add_psi("response_length", [o.response_len for o in ref], [o.response_len for o in cur])
        rr, rc = sum(o.refused for o in ref), sum(o.refused for o in cur)
        z = rate_shift(rr, nr, rc, nc)
        out.append(DriftResult("refusal_rate", "rate_z", z, c.rate_z_threshold, z > c.rate_z_threshold, nr, nc))
        (ho, to), (hc, tc) = self._oov(ref[nr // 2:]), self._oov(cur)
        z = rate_shift(ho, to, hc, tc)
        out.append(DriftResult("unknown_word_rate", "rate_z", z, c.rate_z_threshold, z > c.rate_z_threshold, to, tc))
        jr = [o.judge_score for o in ref if o.judge_score is not None]
        jc = [o.judge_score for o in cur if o.judge_score is not None]
        if len(jr) >= c.min_judged and len(jc) >= c.min_judged:
            add_psi("judge_score", jr, jc)
        er = [o.embedding for o in ref if o.embedding is not None]
        ec = [o.embedding for o in cur if o.embedding is not None]
        if len(er) >= 10 and len(ec) >= 10:
            self._check_seed += 1
            _mmd2, p = mmd_test(np.stack(er), np.stack(ec), c.mmd_permutations, seed=self._check_seed)
            # statistic reported as the p-value so "drifted" reads the same way as the others
            out.append(DriftResult("query_embedding", "mmd_pvalue", p, c.mmd_alpha, p < c.mmd_alpha, len(er), len(ec)))
        return out
