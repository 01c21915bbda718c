"""Instruction data derived from the docs: questions answerable from the topic's own first sentences."""
import json

import pytest

from components.sft import dataset as ds


def test_statement_topic_becomes_question_with_first_sentences():
    from pydoc_data.topics import topics

    qa = list(ds.doc_qa([{"id": "assert", "text": topics["assert"], "title": "assert"}], 2, 320))
    assert qa[0]["question"] == 'What does the "assert" statement do?'
    assert qa[0]["answer"].startswith("Assert statements are a convenient way to insert debugging assertions")
    assert "assert_stmt ::=" not in qa[0]["answer"]  # grammar blocks are not answers
    assert {r["keyword"] for r in qa} == {"assert"}


def test_heading_and_prose_paragraphs_skip_code_and_version_notes():
    text = "Coroutines\n**********\n\nNew in version 3.5.\n\n   async_funcdef ::= x\n\nExecution of Python coroutines can be suspended.\n"
    heading, paras = ds.heading_and_paragraphs(text)
    assert heading == "Coroutines"
    assert paras == ["Execution of Python coroutines can be suspended."]


def test_arithmetic_prompts_have_correct_answers():
    for r in ds.arithmetic_prompts(50, 20, seed=3):
        a, op, b = r["prompt"].split("?")[0].removeprefix("What is ").split()
        assert int(r["answer"]) == (int(a) + int(b) if op == "+" else int(a) - int(b))
        assert int(r["answer"]) >= 0


def test_keyword_prompts_hide_the_keyword():
    qa = [{"answer": 'The "while" statement is used for repeated execution.', "keyword": "while"}]
    (p,) = ds.keyword_prompts(qa)
    assert p["answer"] == "while" and "while" not in p["prompt"].lower().replace("answer with the keyword only", "")


def test_user_chat_jsonl_is_validated(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}) + "\n")
    assert ds.read_chat_jsonl(good)[0]["messages"][1]["content"] == "yo"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(ValueError, match="last message must be the assistant"):
        ds.read_chat_jsonl(bad)


def test_eval_split_is_a_stable_function_of_the_doc_id():
    ids = [f"doc{i}" for i in range(400)]
    held = [i for i in ids if ds.is_eval_doc(i, 0.1)]
    assert held == [i for i in ids if ds.is_eval_doc(i, 0.1)]
    assert 15 < len(held) < 70


def test_user_chats_are_scrubbed_like_the_corpus(tmp_path):
    """user_chat_paths bypass data.corpus, so sft.dataset scrubs them itself: no raw PII in sft.jsonl."""
    from components.sft.config import SFTDatasetConfig
    from components.sft.steps import run_dataset
    from flows.engine.context import StepContext
    from tests.fixtures import tiny_lm

    chats = tmp_path / "chats.jsonl"
    chats.write_text(json.dumps({"messages": [
        {"role": "user", "content": "Mail jane.doe@example.org or call +1 415-555-0142"},
        {"role": "assistant", "content": "Card 4111 1111 1111 1111 noted."}]}) + "\n")
    docs = tiny_lm.write_docs(tmp_path / "docs")
    out = tmp_path / "out"
    run_dataset(StepContext.for_test(out, {"docs": docs}),
                SFTDatasetConfig(num_arithmetic_prompts=4, user_chat_paths=[str(chats)]))
    text = (out / "sft.jsonl").read_text()
    assert "<EMAIL>" in text and "<CREDIT_CARD>" in text and "<PHONE>" in text
    for canary in ("jane.doe@example.org", "4111 1111 1111 1111", "555-0142"):
        assert canary not in text
