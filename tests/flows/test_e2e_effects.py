"""The main job shows every stage working (`e2e_stack`: `llmflow run e2e` as a new user runs it).

Each stage's effect against its own baseline, as the run summary shows it; the gate deciding what
is served; and the served RAG router answering hand-written questions by quoting its sources.
The margins are below the smallest gain measured over fresh runs (benchmarks/RESULTS.md, "The
main job's effects"), so a stage that stops learning fails here, not a run that is merely noisy.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.artifacts import Docs
from components.eval.heuristics import longest_shared_span
from components.rag.labelled_questions import labelled_questions_path, load_labelled_questions
from flows.engine.effects import Effect

pytestmark = pytest.mark.integration

# step -> (effect, smallest gain this test accepts)
MARGINS = {
    "pretrain": ("val_loss", 0.25),             # nats/token under the unigram baseline
    "sft": ("response_loss", 0.3),              # nats/token under the base model, held-out answers
    "grpo": ("reward", 0.0),                    # last steps over first steps, 95% CI above 0
    "draft": ("acceptance_rate", 0.0),          # distilled over data-only draft
    "rag_eval": ("hybrid_recall_at_1", 0.3),    # over a random pick among the indexed docs
}
SPAN_WORDS, SPAN_SHARE = 5, 0.5


def _effects(state: dict, step: str) -> dict[str, Effect]:
    return {e["name"]: Effect(**e) for e in state["steps"][step]["effects"]}


@pytest.mark.parametrize("step", sorted(MARGINS))
def test_each_stage_beats_its_own_baseline(e2e_stack, step):
    name, margin = MARGINS[step]
    effects = _effects(e2e_stack["state"], step)
    assert name in effects, (step, sorted(effects))
    e = effects[name]
    assert e.shown and e.gain > margin, e.describe()
    assert e2e_stack["state"]["steps"][step]["effect_problems"] == []


def test_the_summary_prints_each_effect_beside_its_baseline(e2e_stack):
    out = e2e_stack["output"]
    assert "effect vs baseline" in out
    assert "pretrain: val_loss" in out and "vs unigram" in out
    assert "sft: response_loss" in out and "vs base model" in out


def test_the_gate_decided_what_is_served(e2e_stack):
    steps = e2e_stack["state"]["steps"]
    gate = json.loads((Path(steps["evaluate"]["uri"]) / "gate.json").read_text())
    llm = e2e_stack["llm"]
    assert llm["gate"]["serve"] == ("candidate" if gate["promoted"] else "base")  # a fresh run has no champion
    assert llm["served_model"] == ("grpo" if gate["promoted"] else llm["model"])
    assert gate["base_metrics"] is not None  # the candidate was compared with its base on the same questions
    if gate["promoted"]:
        m = gate["metric"]
        assert gate["candidate"]["metrics"][m] > max(gate["base_metrics"][m], 0.0)
    assert any(f"serving {llm['gate']['serve']}" in v for v in steps["serve"]["links"].values())


def test_router_answers_hand_written_questions_by_quoting_a_cited_source(e2e_stack):
    from openai import OpenAI

    steps = e2e_stack["state"]["steps"]
    docs = {r["id"]: r["text"] for r in Docs.read(Path(steps["corpus"]["uri"])).rows()}
    client = OpenAI(base_url=e2e_stack["rag"]["url"], api_key=e2e_stack["api_key"], max_retries=1, timeout=120)
    questions = [q for q in load_labelled_questions(labelled_questions_path("builtin")) if q.doc_ids[0] in docs]
    assert len(questions) >= 10
    rows = []
    for q in questions[:16]:
        r = client.chat.completions.create(model="llmflow-rag", max_tokens=64,
                                           messages=[{"role": "user", "content": q.question}])
        answer, rag = r.choices[0].message.content or "", r.model_extra["rag"]
        cited = [docs[s["doc_id"]] for s in rag["sources"] if s["doc_id"] in docs]
        rows.append((q.question, answer, rag["route"], longest_shared_span(answer, cited)))
    answered = [row for row in rows if row[2] == "rag"]
    assert answered and all(a.strip() for _, a, _, _ in answered), rows
    share = sum(span >= SPAN_WORDS for *_, span in answered) / len(answered)
    assert share >= SPAN_SHARE, (share, rows)
