"""Fitting grounded prompts into the context: with the tiny served model's real tokenizer and chat
template (what vLLM counts), and with a word counter where exact numbers make the logic visible."""
import pytest

from components.rag.budget import (
    ELLIPSIS,
    ContextOverflowError,
    chat_token_counter,
    fit_sources,
    load_chat_token_counter,
    request_max_tokens,
)
from components.rag.retriever import Source
from components.rag.routing import grounded_messages

MAX_MODEL_LEN = 512  # tiny_model_dir's context


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def count(tiny_model_dir):
    return load_chat_token_counter(str(tiny_model_dir))


@pytest.fixture(scope="module")
def doc_sources(stdlib_texts):
    """Ranked sources cut from real docs, 1200 chars each: five of them overflow 512 tokens."""
    texts = [t for t in stdlib_texts if len(t) > 1500][:6]
    return [Source(id=f"p{i}", doc_id=f"d{i}", title=f"topic {i}", source="pydoc", text=t[:1200], chunk_index=0,
                   score=1 - i / 10, relevance=0.9 - i / 20) for i, t in enumerate(texts)]


def ask(q):
    return [{"role": "user", "content": q}]


def word_count(messages):
    """Fake counter: one token per whitespace-separated word of every message."""
    return sum(len(m["content"].split()) for m in messages)


def words_source(i, n_words):
    return Source(id=f"w{i}", doc_id="d", title=f"W{i}", source="s", text=" ".join(["w"] * n_words), chunk_index=0,
                  score=1.0, relevance=0.9)


def test_counter_is_the_chat_templated_prompt_vllm_sees(tokenizer, count):
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "What is a generator?"}]
    ids = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert count(msgs) == len(ids) > len(tokenizer("What is a generator?")["input_ids"])  # role tags counted
    # OpenAI content parts are counted as vLLM flattens them: texts joined by newlines
    parts = [{"role": "user", "content": [{"type": "text", "text": "What is"}, {"type": "text", "text": "a lambda?"}]}]
    assert count(parts) == count(ask("What is\na lambda?"))


def test_a_tokenizer_without_chat_template_is_refused_with_the_fix(tokenizer):
    bare = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    bare.chat_template = None
    with pytest.raises(ValueError, match="no chat template.*router.tokenizer"):
        chat_token_counter(bare)


@pytest.mark.parametrize("max_tokens", [1, 24, 128, 300, 400])
def test_fitted_prompt_never_exceeds_the_context_and_cuts_from_the_bottom(count, doc_sources, max_tokens):
    msgs = ask("How does exception handling work?")
    fit = fit_sources(count, msgs, doc_sources, max_source_chars=1500, max_model_len=MAX_MODEL_LEN,
                      max_tokens=max_tokens, min_source_tokens=16)
    limit = MAX_MODEL_LEN - max_tokens
    assert fit.sources, "the top source (or part of it) always fits beside a short question"
    assert fit.prompt_tokens == count(fit.messages) <= limit
    # kept sources are a prefix of the ranking, the trimmed one (if any) is the last kept, the rest dropped
    n_full = len(fit.sources) - len(fit.trimmed)
    assert [s.id for s in fit.sources[:n_full]] == [s.id for s in doc_sources[:n_full]]
    assert [s.id for s in fit.dropped] == [s.id for s in doc_sources[len(fit.sources):]]
    assert fit.dropped, "six 1200-char sources cannot fit 512 tokens"
    # the next source whole would not have fit
    assert count(grounded_messages(msgs, doc_sources[:n_full + 1], 1500)) > limit
    for original, sent in fit.trimmed:
        assert sent is fit.sources[-1] and sent.id == original.id
        assert sent.text.endswith(ELLIPSIS) and original.text.startswith(sent.text[:-len(ELLIPSIS)])
    report = fit.report(MAX_MODEL_LEN, max_tokens)
    assert report["prompt_tokens"] == fit.prompt_tokens and report["max_tokens"] == max_tokens
    assert [d["id"] for d in report["dropped"]] == [s.id for s in fit.dropped]
    assert [t["id"] for t in report["trimmed"]] == [o.id for o, _ in fit.trimmed]


def test_sources_that_fit_are_sent_whole(count, doc_sources):
    short = [Source(**{**s.__dict__, "text": s.text[:200]}) for s in doc_sources[:2]]
    fit = fit_sources(count, ask("What is a lambda?"), short, max_source_chars=1500, max_model_len=MAX_MODEL_LEN,
                      max_tokens=64, min_source_tokens=16)
    assert fit.sources == short and fit.dropped == [] and fit.trimmed == []
    assert fit.messages == grounded_messages(ask("What is a lambda?"), short, 1500)


def test_the_top_source_is_trimmed_when_alone_it_does_not_fit(count, doc_sources):
    fit = fit_sources(count, ask("What is a generator?"), doc_sources, max_source_chars=1500,
                      max_model_len=MAX_MODEL_LEN, max_tokens=380, min_source_tokens=10_000)
    assert [s.id for s in fit.sources] == ["p0"] and fit.trimmed[0][0] is doc_sources[0]
    assert fit.prompt_tokens <= MAX_MODEL_LEN - 380  # min_source_tokens does not apply to the top source
    sent = fit.sources[0].text[:-len(ELLIPSIS)]
    assert doc_sources[0].text[len(sent)] in " \n", "cut at a word boundary"


def test_a_trim_below_min_source_tokens_is_dropped_instead():
    # room for the first 30-word source and 12 more words: the second's "[2] W1", 9 words and "…"
    msgs, srcs = ask("q"), [words_source(0, 30), words_source(1, 30), words_source(2, 30)]
    base = word_count(grounded_messages(msgs, srcs[:1], 1500))
    kw = {"max_source_chars": 1500, "max_model_len": base + 12 + 8, "max_tokens": 8}
    fit = fit_sources(word_count, msgs, srcs, min_source_tokens=20, **kw)
    assert [s.id for s in fit.sources] == ["w0"] and [s.id for s in fit.dropped] == ["w1", "w2"] and not fit.trimmed
    fit = fit_sources(word_count, msgs, srcs, min_source_tokens=5, **kw)
    assert [s.id for s in fit.sources] == ["w0", "w1"] and [s.id for s in fit.dropped] == ["w2"]
    assert fit.prompt_tokens <= base + 12 and fit.trimmed[0][1].text.split().count("w") == 9


def test_no_source_fits_beside_a_long_question(count):
    question = "How do generators work? " * 60
    fit = fit_sources(count, ask(question), [words_source(0, 50)], max_source_chars=1500,
                      max_model_len=count(ask(question)) + 20, max_tokens=16, min_source_tokens=1)
    assert fit.sources == [] and [s.id for s in fit.dropped] == ["w0"] and fit.messages == ask(question)


def test_request_max_tokens_honours_refuses_or_shrinks(count):
    q = ask("What is a generator?")
    n = count(q)
    assert request_max_tokens(count, q, max_model_len=512, requested=100, default=128) == (n, 100)
    assert request_max_tokens(count, q, max_model_len=512, requested=None, default=128) == (n, 128)
    assert request_max_tokens(count, q, max_model_len=n + 40, requested=None, default=128) == (n, 40)
    with pytest.raises(ContextOverflowError) as e:
        request_max_tokens(count, q, max_model_len=512, requested=512 - n + 1, default=128)
    assert e.value.param == "max_tokens" and f"at most {512 - n}" in e.value.message
    long_q = ask("Explain every detail of Python's exception handling. " * 80)
    with pytest.raises(ContextOverflowError) as e:
        request_max_tokens(count, long_q, max_model_len=512, requested=None, default=128)
    assert e.value.param == "messages" and f"is {count(long_q)} prompt tokens" in e.value.message
    assert "shorten the question" in e.value.message
