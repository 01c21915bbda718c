"""The router's A/B assignment, on the deployment class itself (no Serve): sticky per user, the configured share."""
from __future__ import annotations

import pytest

from serve.online_eval.config import ExperimentConfig
from serve.router.app import RAGRouter
from serve.router.config import RouterConfig


def router(mode: str, share: float):
    r = object.__new__(RAGRouter.func_or_class)  # only what _arm_of reads
    r.config = RouterConfig(model="champion")
    r.arms = ExperimentConfig(mode=mode, candidate_share=share, candidate_model="cand")
    return r


def test_ab_is_sticky_per_user_and_splits_by_the_share():
    r = router("ab", 0.3)
    arms = {f"user-{i}": r._arm_of({"user": f"user-{i}"}) for i in range(2000)}
    assert all(r._arm_of({"user": u}) == a for u, a in list(arms.items())[:200])  # the same arm every time
    share = sum(a == ("candidate", "cand") for a in arms.values()) / len(arms)
    assert 0.27 < share < 0.33, share
    assert set(arms.values()) == {("candidate", "cand"), ("primary", "champion")}


@pytest.mark.parametrize("mode", ["off", "shadow"])
def test_only_ab_sends_users_to_the_candidate(mode):
    r = router(mode, 1.0)
    assert {r._arm_of({"user": f"u{i}"}) for i in range(50)} == {("primary", "champion")}


def test_arms_without_a_candidate_model_are_refused():
    with pytest.raises(ValueError, match="candidate_model"):
        RouterConfig(online_eval={"experiment_arms": {"mode": "ab"}})
