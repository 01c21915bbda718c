"""The flywheel's promotion rules on per-arm metrics as /online/metrics reports them."""
from __future__ import annotations

from serve.online_eval.evaluator import ArmStats
from serve.online_eval.rules import PromotionRules, decide

RULES = PromotionRules(min_judged_pairs=20, min_votes_per_arm=10)


def arms(wins: int, losses: int, ties: int = 0, up=(8, 8), votes=(10, 10), errors=(0, 0)) -> dict:
    champion, candidate, shadow = ArmStats(), ArmStats(), ArmStats()
    shadow.shadow.update({"b": wins, "a": losses, "tie": ties})
    for stats, u, v, e in ((champion, up[0], votes[0], errors[0]), (candidate, up[1], votes[1], errors[1])):
        stats.served, stats.errors = 100, e
        stats.thumbs.update({"up": u, "down": v - u})
    return {"primary": champion.summary(), "candidate": candidate.summary(), "shadow": shadow.summary()}


def test_a_clear_winner_is_promoted():
    d = decide(arms(wins=30, losses=10), RULES)
    assert d.action == "promote" and d.evidence["shadow.shadow_candidate_score_ci_low"] > 0.5


def test_a_coin_flip_is_rolled_back_not_promoted():
    d = decide(arms(wins=16, losses=14), RULES)
    assert d.action == "rollback" and "does not clear 0.5" in d.reasons[0]


def test_too_little_evidence_waits():
    d = decide(arms(wins=12, losses=0, votes=(3, 10), up=(3, 8)), RULES)
    assert d.action == "wait" and len(d.reasons) == 2  # too few judged pairs, too few champion votes


def test_guards_block_a_winner_that_errs_loses_users_or_drifted():
    assert decide(arms(30, 10, errors=(0, 10)), RULES).action == "rollback"
    assert decide(arms(30, 10, up=(9, 5)), RULES).action == "rollback"
    d = decide(arms(30, 10), RULES, drifted=["query_embedding"])
    assert d.action == "rollback" and "drift" in d.reasons[0]


def test_wilson_interval_holds_its_rate_even_at_0_and_1():
    from serve.online_eval.evaluator import wilson_ci

    for k, n in ((0, 8), (8, 8), (3, 8), (1, 1)):
        low, high = wilson_ci(k, n)
        assert 0.0 <= low <= k / n <= high <= 1.0, (k, n, low, high)
    assert wilson_ci(8, 8)[1] == 1.0 and wilson_ci(0, 8)[0] == 0.0


AB_RULES = PromotionRules(win_rate_from="ab_votes", min_votes_per_arm=40, max_thumbs_up_drop=0.0)


def test_ab_votes_promote_a_candidate_users_like_more_without_any_judge():
    d = decide(arms(wins=0, losses=0, up=(20, 36), votes=(40, 40)), AB_RULES)
    assert d.action == "promote", d.reasons
    assert d.evidence["ab_win_rate"] == 0.5 + (36 / 40 - 20 / 40) / 2 and d.evidence["ab_win_rate_ci_low"] > 0.5


def test_ab_votes_roll_back_a_coin_flip_and_wait_for_votes():
    d = decide(arms(wins=0, losses=0, up=(20, 23), votes=(40, 40)), AB_RULES)
    assert d.action == "rollback" and d.evidence["ab_win_rate_ci_low"] < 0.5 < d.evidence["ab_win_rate_ci_high"]
    assert decide(arms(wins=0, losses=0, up=(10, 20), votes=(20, 20)), AB_RULES).action == "wait"
