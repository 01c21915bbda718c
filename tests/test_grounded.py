"""components.grounded: the router's prompt format and the copy/citation measures built on it."""
from dataclasses import dataclass

from components.grounded import (
    cited_numbers,
    grounded_prompt,
    longest_common_span_words,
    quote_choices,
    without_citations,
    words,
)


@dataclass
class P:
    title: str
    text: str


def test_prompt_numbers_sources_cuts_long_ones_and_ends_with_the_question():
    p = grounded_prompt("what is x?", [P("T0", "alpha"), P("T1", "b" * 100)], max_source_chars=50)
    assert "Sources:\n[1] T0\nalpha\n\n[2] T1\n" + "b" * 50 + " …" in p
    assert p.endswith("Question: what is x?")


def test_the_router_formats_with_this_very_function():
    from components.rag import routing
    from components.rag.prompt import RAG
    from components.rag.retriever import Source

    assert routing.grounded_prompt is grounded_prompt
    src = Source(id="i", doc_id="d", title="with", source="s", text="The with statement ...", chunk_index=0,
                 score=1.0, relevance=0.9)
    assert grounded_prompt("q?", [src], 100) == RAG.replace("{{context}}", "[1] with\nThe with statement ...") \
        .replace("{{question}}", "q?")


def test_words_ignore_case_punctuation_and_layout():
    assert words('The "with"\nstatement, is used.') == ["the", "with", "statement", "is", "used"]


def test_longest_common_span_counts_consecutive_shared_words():
    source = 'The "with" statement is used to wrap the execution of a block\nwith methods.'
    assert longest_common_span_words("It is used to wrap the execution [1].", source) == 6
    assert longest_common_span_words("wrap used the to", source) == 1
    assert longest_common_span_words("", source) == 0
    # a citation marker is not a word of the answer: "[1]" must not bridge or extend a span
    assert longest_common_span_words("[1] the", "1 the") == 1


def test_citations_are_read_in_order_without_repeats():
    assert cited_numbers("see [2], then [1] and [2] again") == [2, 1]
    assert cited_numbers("no sources") == []
    assert words(without_citations("copied text [3].")) == ["copied", "text"]


WITH = ('The "with" statement\n\nThe "with" statement is used to wrap the execution of a block with methods defined '
        'by a context manager. This allows common try...except...finally usage patterns to be encapsulated.\n\n'
        '   with_stmt ::= "with" ...')


def test_quote_choices_are_sentences_of_the_shown_sources_with_their_number():
    sources = [P("with", WITH), P("del", "Deletion is recursively defined, very similar to assignment. Short one.")]
    choices = quote_choices(sources, max_source_chars=300)
    assert choices == [
        '[1] The "with" statement is used to wrap the execution of a block with methods defined by a context manager.',
        "[1] This allows common try...except...finally usage patterns to be encapsulated.",
        "[2] Deletion is recursively defined, very similar to assignment."]  # under 5 words: left out
    for c in choices:  # every choice copies its own source word for word
        source = sources[cited_numbers(c)[0] - 1].text
        assert longest_common_span_words(c, source) == len(words(without_citations(c)))


def test_quote_choices_follow_the_prompt_cut_and_bounds():
    # Only what the prompt shows can be quoted: the cut falls inside the second sentence.
    cut = quote_choices([P("with", WITH)], max_source_chars=WITH.index("This") + 45)  # "...finally usa"
    assert cut[-1] == "[1] This allows common try...except...finally"
    long = P("t", " ".join(f"w{i}" for i in range(50)) + ".")
    assert quote_choices([long], 1000, max_words=10) == ["[1] " + " ".join(f"w{i}" for i in range(10))]
    many = P("t", " ".join(f"Sentence {i} has five words." for i in range(20)))
    assert len(quote_choices([many], 10_000, max_choices=7)) == 7
    assert quote_choices([P("t", "Too short. Also short.")], 1000) == []
