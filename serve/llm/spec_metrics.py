"""Speculative-decoding acceptance from the engine's Prometheus metrics (what an operator's dashboard reads).

vLLM's ``RayPrometheusStatLogger`` (serve/llm/deployment.py) counts drafts, draft tokens and accepted
tokens per served model name; Ray's metrics agent exports them on the node's metrics port as
``[ray_]vllm_spec_decode_num_{drafts,draft_tokens,accepted_tokens}[_total]{model_name="...",...}``.
From those counters:

- acceptance rate = accepted tokens / draft tokens
- mean accepted length = 1 + accepted tokens / drafts (tokens emitted per target forward pass,
  the bonus token included; vLLM's own logger reports the same figure)
"""
from __future__ import annotations

import re
import urllib.request

COUNTERS = ("num_drafts", "num_draft_tokens", "num_accepted_tokens")
_LINE = re.compile(r"^(?:ray_)?vllm_spec_decode_(num_drafts|num_draft_tokens|num_accepted_tokens)(?:_total)?"
                   r"\{(?P<labels>[^}]*)\}\s+(?P<value>[-+0-9.eE]+|NaN)\s*$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(port: int, host: str = "127.0.0.1", timeout_s: float = 10.0) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout_s) as r:
        return r.read().decode()


def spec_counts(metrics_text: str) -> dict[str, dict[str, float]]:
    """``{model_name: {num_drafts, num_draft_tokens, num_accepted_tokens}}`` summed over engines/labels."""
    out: dict[str, dict[str, float]] = {}
    for line in metrics_text.splitlines():
        m = _LINE.match(line)
        if not m or m.group("value") == "NaN":
            continue
        labels = dict(_LABEL.findall(m.group("labels")))
        model = labels.get("model_name", "")
        counts = out.setdefault(model, dict.fromkeys(COUNTERS, 0.0))
        counts[m.group(1)] += float(m.group("value"))
    return out


def acceptance(counts: dict[str, float]) -> dict[str, float | None]:
    """Acceptance rate and mean accepted length from one model's counters (None before any draft)."""
    drafts, proposed, accepted = (counts.get(k, 0.0) for k in COUNTERS)
    return {"acceptance_rate": accepted / proposed if proposed else None,
            "mean_accepted_length": 1 + accepted / drafts if drafts else None,
            "num_drafts": drafts}


def delta(after: dict[str, float], before: dict[str, float] | None) -> dict[str, float]:
    """Counters accumulated between two scrapes of one model."""
    before = before or {}
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in COUNTERS}
