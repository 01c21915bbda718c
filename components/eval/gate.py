"""The promotion gate: register the candidate, compare it with the ``champion`` alias, move the
alias only when the candidate wins on the primary metric and regresses no guard metric.

``decide`` is the pure rule (unit-tested); ``run_gate`` does the registry work and returns
the dict written to ``gate.json`` — the decision, the reason, both versions and metrics.
"""
from __future__ import annotations

from components.eval.config import LOWER_IS_BETTER, GateConfig
from components.tracking import registry


def decide(candidate: dict[str, float], champion: dict[str, float] | None, config: GateConfig,
           base: dict[str, float] | None = None) -> tuple[bool, str]:
    """Promote or not, and why. With no champion yet, the candidate must clear ``config.floor`` and,
    when ``base`` (the same questions through the model it was trained from) is given, beat it."""
    m = config.metric
    if m not in candidate:
        return False, (f"candidate has no {m!r} metric (have: {sorted(candidate)}); "
                       "pick gate.metric from the report, or configure the judge if it is a judge metric")
    sign = 1.0 if config.higher_is_better else -1.0
    if champion is None:
        floor = config.effective_floor
        if floor is not None and sign * (candidate[m] - floor) <= 0:
            return False, (f"no {config.champion_alias!r} yet, and the candidate's {m}={candidate[m]:.4f} does not "
                           f"clear the floor {floor} ({'higher' if sign > 0 else 'lower'} is better; gate.floor): "
                           "nothing is promoted; train longer or change gate.floor in the recipe")
        if base is not None and m in base and sign * (candidate[m] - base[m]) <= config.min_delta:
            return False, (f"no {config.champion_alias!r} yet, and the candidate's {m}={candidate[m]:.4f} does not "
                           f"beat the base model's {base[m]:.4f} by > {config.min_delta}: the adapter adds nothing")
        vs_base = f", base model {base[m]:.4f}" if base is not None and m in base else ""
        return True, (f"no {config.champion_alias!r} yet: the candidate clears the floor {floor} "
                      f"({m}={candidate[m]:.4f}{vs_base}) and becomes champion")
    if m not in champion:
        return False, f"champion has no {m!r} metric recorded; cannot compare (re-evaluate the champion with this metric)"
    gain = sign * (candidate[m] - champion[m])
    if gain <= config.min_delta:
        return False, (f"{m}: candidate {candidate[m]:.4f} vs champion {champion[m]:.4f} "
                       f"({'higher' if sign > 0 else 'lower'} is better) does not beat it by > {config.min_delta}")
    for g, allowed in config.guard_metrics.items():
        if g not in candidate or g not in champion:
            return False, f"guard metric {g!r} missing on {'candidate' if g not in candidate else 'champion'}"
        gsign = -1.0 if g in LOWER_IS_BETTER else 1.0
        regression = gsign * (champion[g] - candidate[g])
        if regression > allowed:
            return False, f"guard {g}: candidate {candidate[g]:.4f} regresses champion {champion[g]:.4f} by more than {allowed}"
    return True, f"{m}: candidate {candidate[m]:.4f} beats champion {champion[m]:.4f} by {gain:.4f} > {config.min_delta}"


def run_gate(tracking_uri: str, config: GateConfig, metrics: dict[str, float], source: str,
             run_id: str | None = None, tags: dict[str, str] | None = None,
             base: dict[str, float] | None = None) -> dict:
    champion = registry.version_by_alias(tracking_uri, config.registered_model, config.champion_alias)
    candidate = registry.register_version(tracking_uri, config.registered_model, source, metrics, tags, run_id)
    registry.set_alias(tracking_uri, config.registered_model, config.candidate_alias, candidate.version)
    promote, reason = decide(metrics, champion.metrics if champion else None, config, base)
    if promote:
        registry.set_alias(tracking_uri, config.registered_model, config.champion_alias, candidate.version)
    registry.set_version_tags(tracking_uri, config.registered_model, candidate.version,
                              {"gate.promoted": promote, "gate.reason": reason[:5000]})
    return {
        "promoted": promote, "gated": True, "reason": reason, "metric": config.metric,
        "higher_is_better": config.higher_is_better, "min_delta": config.min_delta,
        "registered_model": config.registered_model,
        "candidate": {"version": candidate.version, "source": source, "metrics": metrics},
        "base_metrics": base,
        "champion": None if champion is None else {"version": champion.version, "source": champion.source,
                                                   "metrics": champion.metrics},
        "champion_alias_now": candidate.version if promote else (champion.version if champion else None),
    }
