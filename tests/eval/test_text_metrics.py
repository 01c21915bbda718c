import pytest

from components.eval.text_metrics import (
    exact_match,
    normalize_answer,
    qa_metrics,
    token_f1,
)


def test_normalisation_follows_squad_rules():
    assert normalize_answer("The  Quick, brown fox!") == "quick brown fox"
    assert exact_match("the answer.", "Answer") == 1.0
    assert exact_match("answers", "answer") == 0.0


def test_token_f1_partial_overlap():
    # pred {list, is, mutable}, ref {a list is mutable sequence} minus article → 3/3 precision, 3/4 recall
    assert token_f1("list is mutable", "a list is a mutable sequence") == pytest.approx(2 * 1 * 0.75 / 1.75)
    assert token_f1("tuple", "list") == 0.0


def test_qa_metrics_perfect_vs_disjoint():
    refs = ["a list is a mutable sequence type", "dict maps keys to values"]
    perfect = qa_metrics(refs, refs)
    assert perfect["exact_match"] == 1.0 and perfect["f1"] == 1.0
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["rougeL"] == pytest.approx(1.0)
    wrong = qa_metrics(["zebra giraffe", "ocean mountain"], refs)
    assert wrong["f1"] == 0.0 and wrong["rouge1"] == 0.0 and wrong["bleu"] < 1.0


def test_qa_metrics_rejects_misaligned():
    with pytest.raises(ValueError, match="align"):
        qa_metrics(["a"], ["a", "b"])


def test_source_span_rate_counts_answers_that_copy_five_words_in_a_row():
    from components.eval.text_metrics import source_span_rate

    source = 'The "with" statement is used to wrap the execution of a block.'
    answers = ["The with statement is used to wrap it [1].", "statement used wrap block", ""]
    assert source_span_rate(answers, [source] * 3) == pytest.approx(1 / 3)
    assert source_span_rate(answers, [source] * 3, min_words=9) == 0.0
    with pytest.raises(ValueError, match="must align"):
        source_span_rate(answers, [source])
