"""The flywheel's steps around a running stack (``serve.rag``'s endpoint): ``flywheel.export`` turns the
feedback and judged shadow pairs logged since the last turn into a ``prefs`` artifact for ``rl.dpo``;
``flywheel.decide`` applies the promotion rules to the live A/B and shadow metrics.

No vote lost, none counted twice: the online loop appends to its logs; a turn exports the lines after
the *committed* watermark and records that range in its artifact; only ``flywheel.decide`` commits the
range (after a promote or a rollback, not a wait), so a turn that fails or waits leaves its votes for
the next one. Each pair keeps the trace ids it came from (``preferences.jsonl``: ``trace_ids``).
"""
from __future__ import annotations

import json
from pathlib import Path

from components.artifacts import Endpoint
from flows.engine.registry import step_kind
from serve.steps.flywheel_config import FlywheelDecideConfig, FlywheelExportConfig

WATERMARK = "flywheel_watermark.json"
RANGE_FILE = "turn_range.json"


def log_paths(endpoint: Endpoint) -> dict[str, Path]:
    """The online loop's append-only logs: votes, and the judge's shadow verdicts beside them."""
    if not endpoint.feedback_path:
        raise ValueError("the rag endpoint records no feedback_path: run serve.rag with router.online_eval set")
    fb = Path(endpoint.feedback_path)
    return {"feedback": fb, "judged": fb.with_name(fb.stem + "_judged_pairs.jsonl")}


def read_watermark(paths: dict[str, Path]) -> dict[str, int]:
    path = paths["feedback"].with_name(WATERMARK)
    return json.loads(path.read_text()) if path.exists() else {k: 0 for k in paths}


def commit_watermark(paths: dict[str, Path], turn_range: dict[str, list[int]]) -> None:
    path = paths["feedback"].with_name(WATERMARK)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: end for k, (_, end) in turn_range.items()}))
    tmp.replace(path)  # atomic: a crash leaves the old watermark, never half a new one


def lines_since(path: Path, start: int) -> tuple[list[dict], int]:
    if not path.exists():
        return [], start
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return [json.loads(line) for line in lines[start:]], len(lines)


@step_kind("flywheel.export", inputs=("rag",), num_cpus=0, cacheable=False,
           description="Export the live stack's feedback and judged shadow pairs since the last committed turn "
                       "as a prefs artifact (trace-id provenance); stops when there are fewer than min_pairs.")
def run_export(ctx, config: FlywheelExportConfig) -> dict[str, float]:
    from components.eval.preferences import (
        FeedbackRecord,
        JudgedPair,
        export_preferences,
    )

    paths = log_paths(Endpoint.of(ctx, "rag", served="rag"))
    mark = read_watermark(paths)
    feedback, fb_end = lines_since(paths["feedback"], mark.get("feedback", 0))
    judged, j_end = lines_since(paths["judged"], mark.get("judged", 0)) if config.include_judged else ([], 0)
    report = export_preferences([FeedbackRecord(**r) for r in feedback], ctx.output,
                                [JudgedPair(**r) for r in judged])
    turn_range = {"feedback": [mark.get("feedback", 0), fb_end]}
    if config.include_judged:
        turn_range["judged"] = [mark.get("judged", 0), j_end]
    (ctx.output / RANGE_FILE).write_text(json.dumps(turn_range))
    metrics = {k: float(v) for k, v in report.items()}
    ctx.log_metrics(metrics)
    if report["num_pairs"] < config.min_pairs:
        raise ValueError(
            f"turn stopped: {report['num_pairs']} preference pairs since the last turn (from {len(feedback)} votes "
            f"and {len(judged)} judged shadow pairs), fewer than min_pairs={config.min_pairs}. Collect more feedback "
            "(thumbs up and down on answers to the same questions, or shadow traffic with a judge) and run the turn "
            "again; nothing was trained and no vote was used up")
    return metrics


def move_aliases(tracking_uri: str, gate: dict, action: str, trace_ids: list[str], alias: str = "champion") -> dict:
    """The registry side of a decision on the candidate an ``eval.offline`` gate registered (its gate.json):
    promote gives it the champion alias; rollback gives the alias back to the version that held it before
    the turn (the offline gate may have moved it already). The candidate's version is tagged with the
    decision and the trace ids of the feedback it was trained on: its lineage reaches the votes."""
    from components.tracking import registry

    name, candidate = gate["registered_model"], gate["candidate"]["version"]
    before = (gate.get("champion") or {}).get("version")
    registry.set_version_tags(tracking_uri, name, candidate, {
        "flywheel.decision": action, "flywheel.num_trace_ids": len(trace_ids),
        "flywheel.trace_ids": ",".join(trace_ids)[:5000]})
    if action == "promote":
        registry.set_alias(tracking_uri, name, alias, candidate)
        return {"champion": candidate, "was": before}
    if before is not None:
        registry.set_alias(tracking_uri, name, alias, before)
    elif registry.version_by_alias(tracking_uri, name, alias) is not None:
        registry.delete_alias(tracking_uri, name, alias)  # there was no champion before this turn
    return {"champion": before, "was": before}


@step_kind("flywheel.decide", inputs=("rag", "prefs?", "gate?", "trial?"), num_cpus=0, cacheable=False,
           description="Apply the promotion rules (min samples, win-rate CI, thumbs-up, error-rate and drift guards) "
                       "to the live router's A/B and shadow metrics: promote, roll back or wait, with the evidence; "
                       "with a `gate` input (eval.offline) the registry's champion alias follows the decision, "
                       "with a `trial` input (flywheel.trial) the live router's champion too.")
def run_decide(ctx, config: FlywheelDecideConfig) -> dict[str, float]:
    import httpx

    from serve.online_eval.rules import Decision, decide
    from serve.steps.auth import endpoint_api_key
    from serve.steps.flywheel_live import TRIAL_FILE

    rag = Endpoint.of(ctx, "rag", served="rag")
    if not rag.online_metrics_url:
        raise ValueError("the rag endpoint has no online_metrics_url: run serve.rag with router.online_eval set")
    key = endpoint_api_key(rag)
    r = httpx.get(rag.online_metrics_url, headers={"Authorization": f"Bearer {key}"} if key else {},
                  timeout=config.timeout_s)
    r.raise_for_status()
    metrics = r.json()
    drifted = [k for k, v in (metrics.get("drift") or {}).items() if v.get("drifted")]
    decision = decide(metrics.get("arms") or {}, config.rules, drifted)
    trial = json.loads((ctx.input("trial") / TRIAL_FILE).read_text()) if "trial" in ctx.inputs else None
    if trial is not None and "skipped" in trial:  # the offline gate stopped the candidate before any traffic
        decision = Decision("rollback", [trial["skipped"]], decision.evidence)
    (ctx.output / "decision.json").write_text(json.dumps(decision.to_dict(), indent=2))
    ctx.log_metrics(decision.evidence)
    ctx.set_tags({"flywheel.decision": decision.action, "flywheel.reasons": " | ".join(decision.reasons)[:4000]})
    ctx.add_link("flywheel", f"{decision.action}: {'; '.join(decision.reasons)}")
    if decision.action != "wait" and "gate" in ctx.inputs:
        from components.artifacts import read_preferences

        trace_ids = sorted({t for row in read_preferences(ctx.input("prefs")) for t in row.trace_ids}) \
            if "prefs" in ctx.inputs else []
        gate = json.loads((ctx.input("gate") / "gate.json").read_text())
        from components.tracking.mlflow_tracking import default_tracking_uri

        aliases = move_aliases(ctx.tracking_uri or default_tracking_uri(), gate, decision.action, trace_ids)
        (ctx.output / "registry.json").write_text(json.dumps(aliases))
        ctx.set_tags({"flywheel.champion_version": aliases["champion"]})
    if decision.action != "wait" and trial is not None and "skipped" not in trial:
        from serve.steps.flywheel_live import switch_router

        version = None
        if decision.action == "promote" and "gate" in ctx.inputs:
            gate = json.loads((ctx.input("gate") / "gate.json").read_text())
            version = f"{gate['registered_model']} v{gate['candidate']['version']}"
        routed = switch_router(rag, trial, decision.action, version, "; ".join(decision.reasons))
        (ctx.output / "router.json").write_text(json.dumps(routed))
        ctx.set_tags({"flywheel.router_model": routed["model"]})
        ctx.add_link("rollback", f"undo the router switch: python -m serve.router.control rollback {rag.control_path}")
    if decision.action != "wait" and "prefs" in ctx.inputs:
        # The evidence is in: the votes this turn trained on are used up.
        commit_watermark(log_paths(rag), json.loads((ctx.input("prefs") / RANGE_FILE).read_text()))
    return {"promote": float(decision.action == "promote"), "rollback": float(decision.action == "rollback")}
