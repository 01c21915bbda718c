from components.eval.heuristics import (
    groundedness,
    heuristic_scores,
    is_refusal,
    repetition_rate,
)
from components.eval.pii import redact, redact_obj

PII = ("mail jane.doe@example.com or call +1 415-555-0134, card 4111 1111 1111 1111, ssn 123-45-6789, "
       "ip 93.184.216.34, key sk-abcdefghijklmnop1234")


def test_redact_removes_every_kind():
    out, counts = redact(PII)
    for secret in ("jane.doe@example.com", "415-555-0134", "4111 1111 1111 1111", "123-45-6789", "93.184.216.34",
                   "sk-abcdefghijklmnop1234"):
        assert secret not in out
    assert set(counts) == {"email", "phone", "card", "ssn", "ip", "secret"}


def test_redact_keeps_ordinary_numbers_and_nested():
    text = "Python 3.11 added 25 features in 2022; bind to 127.0.0.1"
    assert redact(text)[0] == text
    obj = redact_obj({"messages": [{"role": "user", "content": "I am bob@x.org"}], "n": 3})
    assert obj == {"messages": [{"role": "user", "content": "I am <EMAIL>"}], "n": 3}


def test_heuristics():
    assert is_refusal("I'm sorry, I cannot help with that") and not is_refusal("A list is mutable.")
    assert repetition_rate("the cat the cat the cat the cat") > 0.5
    assert groundedness("lists are mutable", "In Python lists are mutable sequences") == 1.0
    s = heuristic_scores("what is a list", "a list is mutable", "lists are mutable")
    assert s["refusal"] == 0.0 and s["query_words"] == 4.0 and "groundedness" in s


def test_longest_shared_span_counts_words_in_a_row_not_shared_vocabulary():
    from components.eval.heuristics import longest_shared_span

    source = "The with statement is used to wrap the execution of a block with methods defined by a context manager."
    assert longest_shared_span("It is used to wrap the execution of a block [1].", [source]) == 9
    assert longest_shared_span("block execution wrap the used", [source]) == 2  # same words, no quote
    assert longest_shared_span("", [source]) == 0
    assert longest_shared_span("used to wrap", ["nothing here", source]) == 3
