"""rag.evaluate's logic: scoring, the random baseline, the labelled-question loader, and the rule that
only indexed documents are asked about (over a real local-mode Qdrant and a fake embedder; no Ray)."""
import hashlib
import itertools
import json
import math
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from components.rag.config import EvaluateConfig, SparseConfig
from components.rag.evaluation import (
    answerable,
    derive_queries,
    doc_ndcg,
    doc_rank,
    evaluate_index,
    headline_metrics,
    random_scores,
    score_ranks,
)
from components.rag.indexing import doc_hash
from components.rag.labelled_questions import (
    BUILTIN_QUESTIONS,
    LabelledQuestion,
    load_labelled_questions,
)
from components.rag.qdrant_store import QdrantStore
from components.rag.sparse import doc_vector, words

ROOT = Path(__file__).resolve().parents[2]


def test_doc_rank_collapses_chunks_of_one_document():
    assert doc_rank(["a", "a", "b", "c"], "b") == 2
    assert doc_rank(["a", "b"], "z") is None
    assert doc_rank(["a", "a", "b", "c"], {"c", "b"}) == 2  # the first relevant one counts


def test_scores_match_hand_computation():
    s = score_ranks([1, 2, None, 11], ks=[1, 10])
    assert s["recall_at_1"] == 0.25 and s["recall_at_10"] == 0.5
    assert math.isclose(s["mrr"], (1 + 0.5 + 1 / 11) / 4)
    assert math.isclose(s["ndcg_at_10"], (1 + 1 / math.log2(3)) / 4)


def test_ndcg_counts_every_relevant_document_once():
    assert doc_ndcg(["a", "a", "b"], {"a"}) == 1.0  # one relevant, first: ideal
    assert math.isclose(doc_ndcg(["x", "a"], {"a"}), 1 / math.log2(3))  # = the single-relevant formula
    both = doc_ndcg(["a", "x", "b"], {"a", "b"})
    assert math.isclose(both, (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    assert doc_ndcg(["x"] * 3, {"a", "b"}) == 0.0


def test_random_baseline_is_the_exact_expectation_over_orderings():
    one = random_scores(79, [1], [1, 5, 100])
    assert math.isclose(one["recall_at_1"], 1 / 79) and math.isclose(one["recall_at_5"], 5 / 79)
    assert one["recall_at_100"] == 1.0  # a cut-off beyond the index holds everything
    assert math.isclose(one["mrr"], sum(1 / i for i in range(1, 80)) / 79)
    # brute force over every ordering of 6 docs, 2 of them relevant
    n, relevant = 6, {0, 1}
    orders = list(itertools.permutations(range(n)))
    first = [next(i for i, d in enumerate(o, 1) if d in relevant) for o in orders]
    brute = {"recall_at_1": sum(f <= 1 for f in first) / len(orders),
             "recall_at_3": sum(f <= 3 for f in first) / len(orders), "mrr": sum(1 / f for f in first) / len(orders)}
    exact = random_scores(n, [2], [1, 3])
    assert all(math.isclose(exact[k], v) for k, v in brute.items()), (exact, brute)
    mixed = random_scores(n, [1, 2], [1])
    assert math.isclose(mixed["recall_at_1"], (1 / 6 + 2 / 6) / 2)


def test_queries_are_deterministic_and_come_from_their_document(rag_docs):
    docs = list(rag_docs.items())
    a = derive_queries(docs, num_queries=10, query_words=6, seed=3, indexed_doc_ids=rag_docs)
    b = derive_queries(docs, num_queries=10, query_words=6, seed=3, indexed_doc_ids=rag_docs)
    assert a == b and len(a) == 10 and len({q.doc_id for q in a}) == 10
    for q in a:
        assert len(q.query.split()) == 6
        assert all(w in rag_docs[q.doc_id].lower() for w in q.query.split())
    assert derive_queries(docs, 10, 6, seed=4, indexed_doc_ids=rag_docs) != a


def test_queries_come_only_from_indexed_documents(rag_docs):
    indexed = {"break", "class", "with"}
    queries = derive_queries(rag_docs.items(), num_queries=50, query_words=4, seed=0, indexed_doc_ids=indexed)
    assert {q.doc_id for q in queries} == indexed  # every indexed doc once, nothing else, though 50 were asked
    assert derive_queries(rag_docs.items(), 50, 4, seed=0, indexed_doc_ids=set()) == []


# -- the labelled questions ---------------------------------------------------------------------
def test_shipped_questions_load_and_name_real_stdlib_topics():
    from pydoc_data.topics import topics

    questions = load_labelled_questions(BUILTIN_QUESTIONS)
    assert len(questions) >= 30
    stdlib_ids = {f"topics/{k}" for k in topics}
    assert all(set(q.doc_ids) <= stdlib_ids for q in questions), [q for q in questions if not set(q.doc_ids) <= stdlib_ids]
    # not flattering: no question names its main document's topic key outright
    named = [q for q in questions if q.doc_ids[0].removeprefix("topics/").replace("-", " ") in q.question.lower()]
    assert len(named) <= 3, named


def test_shipped_questions_are_installed_with_the_package():
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    rel = BUILTIN_QUESTIONS.relative_to(ROOT / "components").as_posix()
    assert any(fnmatch(rel, pattern) for pattern in package_data.get("components", [])), package_data


def test_bad_lines_fail_together_with_their_line_numbers(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join([
        json.dumps({"question": "How do I leave a loop early?", "doc_ids": ["topics/break"]}),
        "",  # blank lines are skipped, but still counted
        "{not json",
        json.dumps({"question": "What does pass do?"}),
        json.dumps({"question": "", "doc_ids": ["topics/pass"], "answer": "nothing"}),
        json.dumps(["a list"]),
        json.dumps({"question": "how do I leave a  loop early?", "doc_ids": ["topics/break"]}),
        json.dumps({"question": "Why?", "doc_ids": ["topics/a", "topics/a"]}),
    ]) + "\n")
    with pytest.raises(ValueError) as e:
        load_labelled_questions(path)
    msg = str(e.value)
    assert "6 bad line(s)" in msg and str(path) in msg
    for expected in ["line 3: not JSON", "line 4: 'doc_ids' must be", "line 5: unknown key 'answer'",
                     "line 5: unknown key 'answer'; 'question' must be a non-empty string", "line 6: a JSON list",
                     "line 7: same question as line 1", "line 8: 'doc_ids' lists a document twice"]:
        assert expected in msg, msg
    assert '{"question": ' in msg  # says what a good line looks like


def test_missing_or_empty_file_says_what_to_give(tmp_path):
    with pytest.raises(ValueError, match="not found.*builtin"):
        load_labelled_questions(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(ValueError, match="holds no question"):
        load_labelled_questions(tmp_path / "empty.jsonl")


def test_config_validates_the_file_resolves_it_and_hashes_its_content(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.jsonl").write_text(json.dumps({"question": "q?", "doc_ids": ["d"]}) + "\n")
    config = EvaluateConfig(labelled_questions="mine.jsonl")
    assert config.labelled_questions == str(tmp_path / "mine.jsonl")  # steps run elsewhere than the recipe
    first = config.model_dump(mode="json")["labelled_questions_sha256"]
    assert first == hashlib.sha256((tmp_path / "mine.jsonl").read_bytes()).hexdigest()
    (tmp_path / "mine.jsonl").write_text(json.dumps({"question": "other?", "doc_ids": ["d"]}) + "\n")
    assert config.model_dump(mode="json")["labelled_questions_sha256"] != first  # so the step's address moves

    (tmp_path / "bad.jsonl").write_text("{}\n")
    with pytest.raises(ValidationError, match="line 1: "):
        EvaluateConfig(labelled_questions="bad.jsonl")
    assert EvaluateConfig(labelled_questions=None).model_dump()["labelled_questions_sha256"] is None
    assert EvaluateConfig().labelled_questions == "builtin"


def test_answerable_keeps_questions_with_an_indexed_label_and_only_those_labels():
    qs = [LabelledQuestion("a?", ("x", "y"), 1), LabelledQuestion("b?", ("z",), 2)]
    assert answerable(qs, {"y", "w"}) == [LabelledQuestion("a?", ("y",), 1)]


# -- the whole evaluation over a real local index -----------------------------------------------
class BagOfWordsEmbedder:
    """Hashed bag of words, unit norm: texts sharing words are close (enough to rank, no model)."""

    def embed(self, texts):
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for w in words(text):
                out[row, int(hashlib.md5(w.encode()).hexdigest(), 16) % 64] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def corpus_docs(keys):
    from pydoc_data.topics import topics

    return [{"id": f"topics/{k}", "title": k, "source": "stdlib:pydoc_topics", "text": topics[k]} for k in keys]


def index_subset(path, docs):
    """One point per document (its first 2,000 chars), payloads as rag.index writes them."""
    store = QdrantStore.open(path, "c")
    store.sparse_config = SparseConfig()  # what open_index sets from index.json
    store.ensure_collection(64)
    texts = [d["text"][:2000] for d in docs]
    store.upsert([f"00000000-0000-0000-0000-{i:012d}" for i in range(len(docs))], BagOfWordsEmbedder().embed(texts),
                 [doc_vector(t, SparseConfig()) for t in texts],
                 [{"doc_id": d["id"], "hash": doc_hash(d["id"], d["title"], d["source"], d["text"]), "text": t}
                  for d, t in zip(docs, texts)])
    return store


CORPUS = ["assert", "break", "class", "continue", "del", "global", "import", "lambda", "nonlocal", "pass",
          "raise", "return", "while", "yield", "if", "for"]
INDEXED = ["break", "continue", "global", "nonlocal", "raise", "pass"]


def evaluate(store, docs, questions=None, **kw):
    args = {"num_queries": 100, "query_words": 4, "seed": 0, "ks": [1, 10], "depth": 10, **kw}
    return evaluate_index(store, BagOfWordsEmbedder(), docs, questions=questions, **args)


def test_an_index_holding_part_of_the_corpus_is_asked_only_about_that_part(tmp_path):
    docs = corpus_docs(CORPUS)
    questions = load_labelled_questions(BUILTIN_QUESTIONS)
    with index_subset(tmp_path / "q", corpus_docs(INDEXED)) as store:
        report = evaluate(store, docs, questions, questions_source="builtin")
    indexed = {f"topics/{k}" for k in INDEXED}
    assert report["num_indexed_docs"] == len(INDEXED) and report["num_input_docs"] == len(CORPUS)
    assert report["num_queries"] == len(INDEXED)  # 100 asked for; one per indexed doc is all there is
    assert {q["doc_ids"][0] for q in report["queries"]} == indexed
    assert set(report["ks"]) == {1, 5, 10}  # 1 and 5 always: the headline reads them
    assert math.isclose(report["random"]["recall_at_1"], 1 / len(INDEXED))

    lab = report["labelled"]
    expected = [q for q in questions if set(q.doc_ids) & indexed]
    assert lab["num_questions"] == len(expected) and lab["num_questions_total"] == len(questions)
    assert all(set(q["doc_ids"]) <= indexed for q in lab["questions"])
    assert len(lab["skipped"]) == len(questions) - len(expected)
    assert 0 <= lab["hybrid"]["ndcg_at_10"] <= 1  # several relevant docs per question: all of them count
    for mode in ("dense", "sparse", "hybrid"):
        assert 0 <= lab[mode]["recall_at_1"] <= lab[mode]["recall_at_5"] <= lab[mode]["recall_at_10"] <= 1
        assert report[mode]["recall_at_1"] > report["random"]["recall_at_1"]  # keyword queries, word-hash vectors

    metrics = headline_metrics(report)
    assert list(metrics)[:3] == ["hybrid_recall_at_1", "random_recall_at_1", "sparse_recall_at_1"]
    assert metrics["labelled_num_questions"] == len(expected) and metrics["num_indexed_docs"] == len(INDEXED)
    for key in ("labelled_hybrid_recall_at_1", "labelled_hybrid_recall_at_5", "labelled_mrr",
                "labelled_random_recall_at_1", "labelled_sparse_recall_at_1", "labelled_dense_mrr"):
        assert key in metrics, key


def test_a_document_whose_text_changed_since_indexing_is_not_asked_about(tmp_path):
    docs = corpus_docs(INDEXED)
    docs[0] = {**docs[0], "text": docs[0]["text"] + " An edit after indexing."}
    with index_subset(tmp_path / "q", corpus_docs(INDEXED)) as store:
        report = evaluate(store, docs)
    assert report["num_indexed_docs_matching_input"] == len(INDEXED) - 1
    assert docs[0]["id"] not in {q["doc_ids"][0] for q in report["queries"]}
    assert "labelled" not in report


def test_no_answerable_question_is_an_error_naming_the_fix(tmp_path):
    questions = [LabelledQuestion("How do I leave a loop early?", ("topics/break",), 1)]
    with (index_subset(tmp_path / "q", corpus_docs(["pass", "del"])) as store,
          pytest.raises(ValueError, match="none of the 1 labelled questions.*raise rag.index max_docs.*null")):
        evaluate(store, corpus_docs(["pass", "del"]), questions)


def test_an_index_of_other_documents_than_the_input_is_an_error(tmp_path):
    with (index_subset(tmp_path / "q", corpus_docs(["pass"])) as store,
          pytest.raises(ValueError, match="none of the 1 indexed documents is in the docs input")):
        evaluate(store, corpus_docs(["del"]))


def test_the_step_reports_its_effects_against_a_random_pick(tmp_path, monkeypatch):
    import pandas as pd

    import components.rag.embed
    from components.rag.steps import run_evaluate
    from flows.engine.context import StepContext

    docs_dir = tmp_path / "docs"
    (docs_dir / "docs").mkdir(parents=True)
    pd.DataFrame(corpus_docs(CORPUS)).to_parquet(docs_dir / "docs" / "part-00000.parquet")
    index_dir = tmp_path / "index"
    index_subset(index_dir / "qdrant", corpus_docs(INDEXED)).close()
    (index_dir / "index.json").write_text(json.dumps({"backend": "local", "collection": "c"}))
    monkeypatch.setattr(components.rag.embed, "shared_embedder", BagOfWordsEmbedder)

    ctx = StepContext.for_test(tmp_path / "eval", {"index": index_dir, "docs": docs_dir})
    metrics = run_evaluate(ctx, EvaluateConfig(query_words=4))
    assert next(iter(metrics)) == "hybrid_recall_at_1"
    effects = {e.name: e for e in ctx.effects}
    assert set(effects) == {"hybrid_recall_at_1", "labelled_hybrid_recall_at_1"}
    assert effects["hybrid_recall_at_1"].baseline == pytest.approx(1 / len(INDEXED))
    assert effects["hybrid_recall_at_1"].baseline_name == f"random pick of {len(INDEXED)} indexed docs"
    assert effects["hybrid_recall_at_1"].shown
    report = json.loads((ctx.output / "report.json").read_text())
    assert report["labelled"]["sha256"] == EvaluateConfig().labelled_questions_sha256
    assert report["labelled"]["source"] == str(BUILTIN_QUESTIONS)

    ctx = StepContext.for_test(tmp_path / "eval2", {"index": index_dir, "docs": docs_dir})
    run_evaluate(ctx, EvaluateConfig(query_words=4, labelled_questions=None))
    assert [e.name for e in ctx.effects] == ["hybrid_recall_at_1"]
