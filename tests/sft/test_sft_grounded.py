"""Grounded instruction data: the router's own prompt (numbered sources + question) -> [n] and an
answer copied from that gold source; held-out documents never reach training."""
import json
import random
import re

import pytest

from components.grounded import longest_common_span_words, words
from components.sft import grounded as gd

DOC = {"id": "topics/with", "title": "with", "text": (
    'The "with" statement\n********************\n\n'
    'The "with" statement is used to wrap the execution of a block with\nmethods defined by a context manager:\n\n'
    '   with_stmt ::= "with" ( "(" with_stmt_contents ","? ")" | with_stmt_contents ) ":" suite\n\n'
    'The execution of the "with" statement with one item proceeds as\nfollows.\n')}
OTHER = {"id": "topics/pass", "title": "pass", "text": "The pass statement\n******\n\n" + "Pass is a null operation. " * 30}
ROW = {"question": 'What does the "with" statement do?', "source_id": "topics/with",
       "answer": 'The "with" statement is used to wrap the execution of a block with methods defined by a context manager.'}
SETTINGS = {"max_distractors": 2, "passage_chars": 500, "max_source_chars": 1500, "max_context_chars": 1000}


@pytest.fixture(scope="module")
def grounded_data(tmp_path_factory):
    from components.sft.config import SFTDatasetConfig
    from components.sft.steps import run_dataset
    from flows.engine.context import StepContext
    from tests.fixtures import tiny_lm

    tmp = tmp_path_factory.mktemp("grounded")
    out = tmp / "out"
    config = SFTDatasetConfig()
    metrics = run_dataset(StepContext.for_test(out, {"docs": tiny_lm.write_docs(tmp / "docs")}), config)
    read = lambda name: [json.loads(x) for x in (out / name).read_text().splitlines()]  # noqa: E731
    return config, metrics, read("sft.jsonl"), read("prompts.jsonl"), read("eval_grounded.jsonl")


def test_gold_passage_is_the_opening_through_the_answer_paragraph_with_its_line_breaks():
    gold = gd.gold_passage(DOC, ROW["answer"], passage_chars=500)
    assert gold.text.startswith('The "with" statement\n****')
    assert "block with\nmethods defined by a context manager:" in gold.text
    assert gd.answer_visible(ROW["answer"], gold, 1500)
    assert gd.gold_passage(DOC, "An answer from no paragraph of it.", 500) is None


def test_the_user_turn_is_exactly_what_the_router_sends():
    from components.rag.retriever import Source
    from components.rag.routing import grounded_prompt

    gold = gd.gold_passage(DOC, ROW["answer"], 500)
    rec = gd.grounded_example(ROW, gold, [DOC], random.Random(0), **SETTINGS)  # no other doc: the gold alone
    src = Source(id="x", doc_id=DOC["id"], title="with", source="s", text=gold.text, chunk_index=0, score=1.0,
                 relevance=0.9)
    assert rec["prompt"] == grounded_prompt(ROW["question"], [src], 1500)
    assert rec["citation"] == 1 and rec["response"] == "[1] " + ROW["answer"]


def test_distractors_are_trimmed_to_the_budget_and_the_gold_never_is():
    gold = gd.DocPassage("g", "gold", "g" * 600)
    far = gd.DocPassage("d", "other", "word " * 200)
    kept = gd.fit_context([far, gold, gd.DocPassage("e", "more", "x" * 50)], gold, max_context_chars=800)
    assert kept[1] is gold and len(kept) == 2  # the third no longer fits beside the trimmed first
    assert kept[0].text.endswith(" …") and len(kept[0].text) <= 200
    assert gd.fit_context([far, gold], gold, max_context_chars=650) == [gold]  # under 80 chars left: dropped


def test_chunk_cut_prefers_paragraph_then_line_then_sentence_breaks():
    assert gd.chunk_cut("a" * 60 + "\n\n" + "b" * 60, 100) == "a" * 60
    assert gd.chunk_cut("a" * 60 + ". " + "b" * 60, 100) == "a" * 60 + "."
    assert gd.chunk_cut("short", 100) == "short"


def test_sft_mix_holds_plain_and_grounded_chats_in_the_configured_share(grounded_data):
    from pydoc_data.topics import topics

    config, metrics, sft, _, _ = grounded_data
    grounded = [c for c in sft if c["messages"][0]["content"].startswith("Answer the question using only")]
    assert len(grounded) == metrics["num_grounded_examples"] > 0
    assert len(grounded) / len(sft) == pytest.approx(config.grounded_share, abs=0.01)
    for chat in grounded:
        prompt, response = chat["messages"][0]["content"], chat["messages"][1]["content"]
        n = int(re.match(r"\[(\d+)\] ", response).group(1))
        found = [m for m in re.finditer(r"(?:Sources:|\n)\n\[(\d+)\] (\S+)\n", prompt) if m.group(2) in topics]
        headers = [int(m.group(1)) for m in found]
        assert headers == list(range(1, len(headers) + 1)) and 2 <= len(headers) <= 1 + config.max_distractors
        assert n in headers
        ends = [m.start() for m in found[1:]] + [prompt.rindex("\n\nQuestion: ")]
        gold_block = prompt[found[n - 1].end():ends[n - 1]]
        answer = response.split("] ", 1)[1]
        assert longest_common_span_words(answer, gold_block) == len(words(answer))  # the answer is copyable


def test_held_out_documents_stay_out_of_training(grounded_data):
    from pydoc_data.topics import topics

    from components.sft.dataset import is_eval_doc

    config, _, sft, prompts, evals = grounded_data
    held = [k for k in topics if is_eval_doc(k, config.eval_fraction)]
    assert held and evals and {r["source_id"] for r in evals} <= set(held)
    training_text = json.dumps(sft) + json.dumps(prompts)
    for doc_id in held:
        assert f"] {doc_id}\\n" not in training_text, doc_id  # neither gold nor distractor


def test_grpo_prompts_carry_the_reward_columns(grounded_data):
    _, _, _, prompts, evals = grounded_data
    assert prompts and all(set(p) == {"prompt", "answer", "citation", "source_id"} for p in prompts)
    assert {p["citation"] for p in prompts} >= {1, 2}  # shuffled positions
    for r in evals:
        assert r["response"] == f"[{r['citation']}] {r['answer']}" and r["source_text"] in r["prompt"]


def test_task_switches(tmp_path):
    from components.sft.config import SFTDatasetConfig
    from components.sft.steps import run_dataset
    from flows.engine.context import StepContext
    from tests.fixtures import tiny_lm

    out = tmp_path / "out"
    m = run_dataset(StepContext.for_test(out, {"docs": tiny_lm.write_docs(tmp_path / "docs")}),
                    SFTDatasetConfig(grounded_share=0.0, grpo_tasks=["arithmetic"], num_arithmetic_prompts=5))
    assert m["num_grounded_examples"] == 0 and m["num_prompts"] == 5
    with pytest.raises(ValueError, match="grpo_tasks is empty"):
        SFTDatasetConfig(grpo_tasks=[])
