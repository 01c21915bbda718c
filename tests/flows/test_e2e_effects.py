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

# Every stage measures an effect against its own baseline.
EFFECTS = {"pretrain": "val_loss", "sft": "response_loss", "grpo": "reward", "draft": "acceptance_rate",
           "rag_eval": "hybrid_recall_at_1", "evaluate": "rag_f1"}
# The stages whose effect shows even at the test's size (E2E_SMALLEST: 10 pretraining steps, 2 GRPO
# steps, a 10-step draft of a target that still repeats itself), with the smallest gain accepted. The others learn too little at this size to clear their
# margins; for them the test checks that the flow said so (the recipe's full-size effects are in
# benchmarks/RESULTS.md, "The main job's effects").
MARGINS = {"rag_eval": 0.3}
SPAN_WORDS = 5


def _effects(state: dict, step: str) -> dict[str, Effect]:
    return {e["name"]: Effect(**e) for e in state["steps"][step]["effects"]}


@pytest.mark.parametrize("step", sorted(EFFECTS))
def test_each_stage_measures_its_effect_and_says_when_it_is_absent(e2e_stack, step):
    effects = _effects(e2e_stack["state"], step)
    assert EFFECTS[step] in effects, (step, sorted(effects))
    e = effects[EFFECTS[step]]
    assert e.baseline == e.baseline and e.value == e.value, e  # both measured (not NaN)
    problems = e2e_stack["state"]["steps"][step]["effect_problems"]
    if step in MARGINS:
        assert e.shown and e.gain > MARGINS[step], e.describe()
    if not e.shown:  # a stage that learned nothing is flagged in the summary, never silent
        assert problems and any(f"{step} (" in line and "no effect" in line
                                for line in e2e_stack["output"].replace("\n", " ").split("⚠")), problems


def test_the_summary_prints_each_effect_beside_its_baseline(e2e_stack):
    assert "effect vs" in e2e_stack["output"]  # the table's column (rich may wrap its header over two rows)
    out = "".join(e2e_stack["output"].split())  # rich wraps long lines: compare without whitespace
    assert "pretrain:val_loss" in out and "vsunigram" in out
    assert "sft:response_loss" in out and "vsbasemodel" in out
    assert "rag_eval:hybrid_recall_at_1" in out and "vsrandompick" in out


def test_the_gate_decided_what_is_served(e2e_stack):
    steps = e2e_stack["state"]["steps"]
    gate = json.loads((Path(steps["evaluate"]["uri"]) / "gate.json").read_text())
    llm = e2e_stack["llm"]
    assert llm.gate["serve"] == ("candidate" if gate["promoted"] else "base")  # a fresh run has no champion
    assert llm.served_model == ("grpo" if gate["promoted"] else llm.model)
    assert gate["base_metrics"] is not None  # the candidate was compared with its base on the same questions
    if gate["promoted"]:
        m = gate["metric"]
        assert gate["candidate"]["metrics"][m] > max(gate["base_metrics"][m], 0.0)
    assert any(f"serving {llm.gate['serve']}" in v for v in steps["serve"]["links"].values())


def test_router_answers_hand_written_questions_from_cited_sources(e2e_stack):
    """Labelled questions the index can answer get answers from their cited sources: none empty, and at
    least half quote a cited source (>= 5 words in a row). The recipe serves in quote mode (the
    4M-parameter model picks a sentence of a source; it cannot copy one by free generation)."""
    from openai import OpenAI

    steps = e2e_stack["state"]["steps"]
    docs = {r["id"]: r["text"] for r in Docs.read(Path(steps["corpus"]["uri"])).rows()}
    client = OpenAI(base_url=e2e_stack["rag"].url, api_key=e2e_stack["api_key"], max_retries=1, timeout=120)
    questions = [q for q in load_labelled_questions(labelled_questions_path("builtin")) if q.doc_ids[0] in docs]
    assert len(questions) >= 8
    rows = []
    for q in questions[:8]:  # each answer takes ~3 s on 2 cores; the slow tier asks 36 (test_e2e_router_questions)
        r = client.chat.completions.create(model="llmflow-rag", max_tokens=64,
                                           messages=[{"role": "user", "content": q.question}])
        answer, rag = r.choices[0].message.content or "", r.model_extra["rag"]
        cited = [docs[s["doc_id"]] for s in rag["sources"] if s["doc_id"] in docs]
        rows.append({"question": q.question, "answer": answer, "route": rag["route"], "mode": rag["answer_mode"],
                     "cited": [s["doc_id"] for s in rag["sources"]], "span_words": longest_shared_span(answer, cited)})
    answered = [row for row in rows if row["route"] == "rag"]
    assert len(answered) >= len(rows) // 2, rows  # the index holds their documents: most are answered from it
    assert all(row["cited"] for row in answered), rows
    empty = sum(not row["answer"].strip() for row in answered)
    share = sum(row["span_words"] >= SPAN_WORDS for row in answered) / len(answered)
    (e2e_stack["workdir"] / "router_answers.json").write_text(
        json.dumps({"span_share": share, "empty": empty, "rows": rows}, indent=2))
    assert all(row["mode"] == "quote" for row in answered), rows
    assert empty == 0 and share >= 0.5, rows  # issue 16's goal for the laptop flow
