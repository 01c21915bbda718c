import pytest

from components.rag.config import SparseConfig
from components.rag.sparse import doc_vector, query_vector, term_index, words


def test_terms_hash_stably_and_stopwords_drop():
    assert term_index("assert") == term_index("assert") != term_index("assertion")
    assert words("The assert statement IS for debugging") == ["assert", "statement", "debugging"]


def _weight(text, term, cfg):
    """The weight ``doc_vector`` gives ``term`` (looked up by the encoder's own query index)."""
    (index,), _ = query_vector(term, cfg)
    return dict(zip(*doc_vector(text, cfg)))[index]


@pytest.mark.parametrize("encoder", ["qdrant_bm25", "hashed"])
def test_doc_vector_saturates_term_frequency_and_normalises_length(encoder):
    cfg = SparseConfig(encoder=encoder, k1=1.2, b=0.75, avg_doc_tokens=10)
    text = "lambda lambda lambda lambda yield"
    lam, yld = _weight(text, "lambda", cfg), _weight(text, "yield", cfg)
    assert lam > yld and lam < 4 * yld  # more occurrences weigh more, but sub-linearly
    short = _weight("lambda", "lambda", cfg)
    long_ = _weight("lambda " + "filler " * 30, "lambda", cfg)
    assert short > long_  # the same single occurrence counts less in a longer chunk


def test_hashed_indices_are_sorted_term_hashes():
    idx, _ = doc_vector("lambda yield", SparseConfig(encoder="hashed"))
    assert idx == sorted([term_index("lambda"), term_index("yield")])


def test_qdrant_bm25_stems_and_drops_stopwords():
    cfg = SparseConfig()  # the default encoder: Qdrant's BM25
    assert cfg.encoder == "qdrant_bm25"
    assert query_vector("files", cfg) == query_vector("file", cfg)  # Snowball: one term
    assert query_vector("the of and", cfg) == ([], [])


@pytest.mark.parametrize("encoder", ["qdrant_bm25", "hashed"])
def test_query_vector_is_binary_and_deduplicated(encoder):
    idx, vals = query_vector("yield yield generator", SparseConfig(encoder=encoder))
    assert len(idx) == 2 and vals == [1.0, 1.0]
