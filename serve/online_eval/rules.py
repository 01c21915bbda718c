"""The flywheel's promotion rules: from the live router's per-arm metrics to promote / roll back / wait.

``decide(arms, rules, drifted)`` reads what ``GET /online/metrics`` reports (``OnlineEvaluator.arm_metrics``:
``primary`` = the champion, ``candidate`` = the A/B arm, ``shadow`` = the judged shadow copies) and
returns a ``Decision`` whose reasons name every rule that fired. Nothing is promoted without evidence:
too few votes or judged pairs is ``wait``, never ``promote``.

- promote: enough evidence, and the candidate's win rate (judged shadow pairs, ties half a win; or the
  A/B thumbs, ``win_rate_from``) has a 95% CI whose lower end clears ``min_win_rate_ci_low``, its thumbs-up rate is not below the
  champion's by more than ``max_thumbs_up_drop``, its error rate not above the champion's by more than
  ``max_error_rate_increase``, and no drift alert is open;
- rollback: the evidence is in and any of those fails (the candidate loses, errs, or the traffic drifted);
- wait: not enough votes or judged pairs yet.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal

from pydantic import Field

from components.config import Config


class PromotionRules(Config):
    win_rate_from: Literal["shadow_judge", "ab_votes"] = Field("shadow_judge", description=(
        "Where the candidate's win rate over the champion comes from: the judge's shadow verdicts (ties half), "
        "or the A/B thumbs: P(a candidate answer is liked more than a champion answer), ties half = "
        "0.5 + (candidate thumbs-up rate - champion's) / 2, with an Agresti-Caffo 95% CI."))
    min_judged_pairs: int = Field(20, ge=0, description="Judged shadow pairs needed before any decision "
                                  "(win_rate_from: shadow_judge).")
    min_votes_per_arm: int = Field(10, ge=0, description="Thumbs on each A/B arm needed before any decision.")
    min_win_rate_ci_low: float = Field(0.5, ge=0, le=1, description=(
        "The lower end of the 95% CI of the candidate's win rate over the champion (judged shadow pairs, ties "
        "half) must exceed this: 0.5 = it wins more often than not, beyond noise."))
    max_thumbs_up_drop: float = Field(0.1, ge=0, le=1, description=(
        "The candidate's A/B thumbs-up rate may trail the champion's by at most this."))
    max_error_rate_increase: float = Field(0.02, ge=0, le=1, description=(
        "The candidate's error rate may exceed the champion's by at most this."))
    block_on_drift: bool = Field(True, description="An open drift alert blocks promotion (the evidence is stale).")


@dataclass
class Decision:
    action: Literal["promote", "rollback", "wait"]
    reasons: list[str] = field(default_factory=list)
    evidence: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def ab_win_rate(champion: dict[str, float], candidate: dict[str, float]) -> tuple[float, float, float]:
    """(win rate, 95% CI low, high) of the candidate over the champion from the A/B thumbs: a random liked/
    disliked candidate answer against a random champion answer, ties half, is 0.5 + (p_cand - p_champ) / 2.
    The CI is Agresti-Caffo's for the difference (one up and one down added to each arm: sane at 0 and 1)."""
    n_c, n_p = candidate.get("votes", 0.0), champion.get("votes", 0.0)
    up_c, up_p = candidate.get("thumbs_up_rate", 0.0) * n_c, champion.get("thumbs_up_rate", 0.0) * n_p
    diff = (up_c / n_c if n_c else 0.0) - (up_p / n_p if n_p else 0.0)
    pc, pp = (up_c + 1) / (n_c + 2), (up_p + 1) / (n_p + 2)
    half = 1.96 * math.sqrt(pc * (1 - pc) / (n_c + 2) + pp * (1 - pp) / (n_p + 2))
    adj = pc - pp
    return 0.5 + diff / 2, max(0.0, 0.5 + (adj - half) / 2), min(1.0, 0.5 + (adj + half) / 2)


def decide(arms: dict[str, dict[str, float]], rules: PromotionRules, drifted: list[str] = ()) -> Decision:
    champion, candidate, shadow = arms.get("primary", {}), arms.get("candidate", {}), arms.get("shadow", {})
    evidence = {f"{arm}.{k}": v for arm, m in (("champion", champion), ("candidate", candidate),
                                               ("shadow", shadow)) for k, v in m.items()}
    waiting = []
    judged = shadow.get("shadow_judged", 0.0)
    if rules.win_rate_from == "shadow_judge" and judged < rules.min_judged_pairs:
        waiting.append(f"{judged:g} judged shadow pairs, fewer than min_judged_pairs={rules.min_judged_pairs}")
    for name, m in (("champion", champion), ("candidate", candidate)):
        if m.get("votes", 0.0) < rules.min_votes_per_arm:
            waiting.append(f"{m.get('votes', 0.0):g} votes on the {name} arm, fewer than "
                           f"min_votes_per_arm={rules.min_votes_per_arm}")
    if waiting:
        return Decision("wait", waiting, evidence)
    failed = []
    if rules.win_rate_from == "ab_votes":
        rate, low, high = ab_win_rate(champion, candidate)
        evidence.update({"ab_win_rate": rate, "ab_win_rate_ci_low": low, "ab_win_rate_ci_high": high})
    else:
        low, rate = shadow.get("shadow_candidate_score_ci_low", 0.0), shadow.get("shadow_candidate_score", 0.0)
    if low <= rules.min_win_rate_ci_low:
        failed.append(f"win rate {rate:.3f} (95% CI low {low:.3f}) does not clear {rules.min_win_rate_ci_low}")
    if rules.min_votes_per_arm:
        drop = champion.get("thumbs_up_rate", 0.0) - candidate.get("thumbs_up_rate", 0.0)
        if drop > rules.max_thumbs_up_drop:
            failed.append(f"thumbs-up rate {candidate.get('thumbs_up_rate', 0.0):.3f} trails the champion's "
                          f"{champion.get('thumbs_up_rate', 0.0):.3f} by more than {rules.max_thumbs_up_drop}")
    rise = candidate.get("error_rate", 0.0) - champion.get("error_rate", 0.0)
    if rise > rules.max_error_rate_increase:
        failed.append(f"error rate {candidate.get('error_rate', 0.0):.3f} exceeds the champion's "
                      f"{champion.get('error_rate', 0.0):.3f} by more than {rules.max_error_rate_increase}")
    if rules.block_on_drift and drifted:
        failed.append(f"drift alert open on {sorted(drifted)}")
    if failed:
        return Decision("rollback", failed, evidence)
    return Decision("promote", [f"win rate {rate:.3f} (95% CI low {low:.3f}) > {rules.min_win_rate_ci_low}; "
                                "thumbs-up, error-rate and drift guards pass"], evidence)
