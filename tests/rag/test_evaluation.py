import math

from components.rag.evaluation import derive_queries, doc_rank, score_ranks


def test_doc_rank_collapses_chunks_of_one_document():
    assert doc_rank(["a", "a", "b", "c"], "b") == 2
    assert doc_rank(["a", "b"], "z") is None


def test_scores_match_hand_computation():
    s = score_ranks([1, 2, None, 11], ks=[1, 10])
    assert s["recall_at_1"] == 0.25 and s["recall_at_10"] == 0.5
    assert math.isclose(s["mrr"], (1 + 0.5 + 1 / 11) / 4)
    assert math.isclose(s["ndcg_at_10"], (1 + 1 / math.log2(3)) / 4)


def test_queries_are_deterministic_and_come_from_their_document(rag_docs):
    docs = list(rag_docs.items())
    a = derive_queries(docs, num_queries=10, query_words=6, seed=3)
    b = derive_queries(docs, num_queries=10, query_words=6, seed=3)
    assert a == b and len(a) == 10 and len({q.doc_id for q in a}) == 10
    for q in a:
        assert len(q.query.split()) == 6
        assert all(w in rag_docs[q.doc_id].lower() for w in q.query.split())
    assert derive_queries(docs, 10, 6, seed=4) != a
