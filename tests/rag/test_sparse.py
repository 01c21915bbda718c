from components.rag.config import SparseConfig
from components.rag.sparse import doc_vector, query_vector, term_index, words


def test_terms_hash_stably_and_stopwords_drop():
    assert term_index("assert") == term_index("assert") != term_index("assertion")
    assert words("The assert statement IS for debugging") == ["assert", "statement", "debugging"]


def test_doc_vector_saturates_term_frequency_and_normalises_length():
    cfg = SparseConfig(k1=1.2, b=0.75, avg_doc_tokens=10)
    idx, vals = doc_vector("lambda lambda lambda lambda yield", cfg)
    weights = dict(zip(idx, vals))
    lam, yld = weights[term_index("lambda")], weights[term_index("yield")]
    assert lam > yld and lam < 4 * yld  # more occurrences weigh more, but sub-linearly
    assert idx == sorted(idx)
    short = dict(zip(*doc_vector("lambda", cfg)))[term_index("lambda")]
    long_ = dict(zip(*doc_vector("lambda " + "filler " * 30, cfg)))[term_index("lambda")]
    assert short > long_  # the same single occurrence counts less in a longer chunk


def test_query_vector_is_binary_and_deduplicated():
    idx, vals = query_vector("yield yield generator")
    assert len(idx) == 2 and vals == [1.0, 1.0]
