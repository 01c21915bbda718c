from components.rag.retriever import Source
from components.rag.routing import (
    choose_route,
    cited_sources,
    grounded_messages,
    grounded_prompt,
    query_of,
)


def src(i, rel, text="text"):
    return Source(id=f"id{i}", doc_id=f"d{i}", title=f"T{i}", source="s", text=text, chunk_index=0, score=1 / (i + 1),
                  relevance=rel)


def test_route_follows_threshold_and_policy():
    assert choose_route([src(0, 0.2), src(1, 0.6)], 0.5, "refuse") == "rag"
    assert choose_route([src(0, 0.2)], 0.5, "refuse") == "refuse"
    assert choose_route([src(0, 0.2)], 0.5, "generate") == "generate"
    assert choose_route([], 0.5, "generate") == "generate"


def test_cited_sources_keep_those_above_threshold():
    assert [s.id for s in cited_sources([src(0, 0.9), src(1, 0.1), src(2, 0.7)], 0.5)] == ["id0", "id2"]


def test_grounded_prompt_numbers_sources_and_keeps_the_question():
    p = grounded_prompt("what is x?", [src(0, 0.9, "alpha"), src(1, 0.8, "b" * 100)], max_source_chars=50)
    assert "[1] T0\nalpha" in p and "[2] T1\n" + "b" * 50 + " …" in p
    assert p.endswith("Question: what is x?")


def test_grounded_messages_replace_only_the_last_user_turn():
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"}, {"role": "user", "content": [{"type": "text", "text": "second?"}]}]
    assert query_of(msgs) == "second?"
    out = grounded_messages(msgs, [src(0, 0.9, "alpha")], 100)
    assert out[:3] == msgs[:3] and "Question: second?" in out[3]["content"] and "[1] T0" in out[3]["content"]
