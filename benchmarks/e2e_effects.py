"""The main job's per-stage effects over fresh runs: each stage's value against its own baseline.

Run `llmflow run e2e --workdir DIR` in fresh working dirs (a fresh HOME each), then:

    .venv/bin/python benchmarks/e2e_effects.py DIR1 DIR2 ...

Prints one row per stage effect (value, baseline, gain: mean and min–max over the runs, and how
many runs showed it) and the flow's wall time, read from each run's state file
(`.llmflow/state/e2e.json`, which holds every step's effects as the run summary printed them).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import mean


def load(workdir: Path, flow: str) -> dict:
    path = workdir / ".llmflow" / "state" / f"{flow}.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `llmflow run {flow} --workdir {workdir}` first")
    return json.loads(path.read_text())


def spread(xs: list[float]) -> str:
    return f"{mean(xs):.3f} ({min(xs):.3f}–{max(xs):.3f})" if len(xs) > 1 else f"{xs[0]:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workdirs", nargs="+", type=Path)
    ap.add_argument("--flow", default="e2e")
    args = ap.parse_args()
    states = [load(w, args.flow) for w in args.workdirs]
    rows: dict[tuple[str, str], list[dict]] = {}
    for state in states:
        for step, outcome in state["steps"].items():
            for e in outcome.get("effects", []):
                rows.setdefault((step, e["name"]), []).append(e)
    print(f"| stage effect | value | baseline | gain | shown in | runs |")
    print("|---|---|---|---|---|---|")
    for (step, name), effects in rows.items():
        sign = [1.0 if e["higher_is_better"] else -1.0 for e in effects]
        gains = [s * (e["value"] - e["baseline"]) for s, e in zip(sign, effects)]
        shown = sum(g > e["min_margin"] and (e["ci_low"] is None or e["ci_low"] > 0) for g, e in zip(gains, effects))
        print(f"| {step}: {name} vs {effects[0]['baseline_name']} | {spread([e['value'] for e in effects])} | "
              f"{spread([e['baseline'] for e in effects])} | {spread(gains)} | {shown}/{len(effects)} "
              f"(needs > {effects[0]['min_margin']:g}) | {len(effects)} |")
    print(f"\nflow wall s: {spread([s['wall_s'] for s in states])} over {len(states)} run(s)")
    for state in states:
        gate = state["steps"].get("serve", {}).get("links", {}).get("gate")
        if gate:
            print(f"gate: {gate}")


if __name__ == "__main__":
    main()
