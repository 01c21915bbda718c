"""Response-only loss: inspect the label mask the chat template produces."""
import pytest

from components.sft.chat import IGNORE, collate, encode_chat


@pytest.fixture(scope="module")
def tok(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def test_only_assistant_tokens_carry_labels(tok):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What does pass do?"},
            {"role": "assistant", "content": "It does nothing."}]
    enc = encode_chat(tok, msgs, max_len=512)
    labelled = [t for t in enc["labels"] if t != IGNORE]
    assert tok.decode(labelled) == "It does nothing." + tok.eos_token  # the response and its EOS, nothing else
    first = enc["labels"].index(labelled[0])
    assert all(t == IGNORE for t in enc["labels"][:first])
    assert "What does pass do?" in tok.decode(enc["input_ids"][:first])
    assert tok.convert_ids_to_tokens(enc["input_ids"][first - 2]) == "<|assistant|>"


def test_multi_turn_labels_every_assistant_turn(tok):
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "one"},
            {"role": "user", "content": "b"}, {"role": "assistant", "content": "two"}]
    enc = encode_chat(tok, msgs, 512)
    text = tok.decode([t for t in enc["labels"] if t != IGNORE])
    assert text == "one" + tok.eos_token + "two" + tok.eos_token


def test_template_without_generation_markers_masks_by_prefix(tok):
    """A published-style template with no {% generation %} markers: each assistant turn is the tokens its
    message adds after the generation prompt (the end-of-turn token included, so the model learns to stop)."""
    import copy

    chatml = copy.deepcopy(tok)
    chatml.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end_of_text|>\n{% endfor %}"
                            "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "one"},
            {"role": "user", "content": "b"}, {"role": "assistant", "content": "two"}]
    enc = encode_chat(chatml, msgs, 512)
    assert chatml.decode([t for t in enc["labels"] if t != IGNORE]) == "one<|end_of_text|>\ntwo<|end_of_text|>\n"


def test_template_that_is_neither_marked_nor_prefix_consistent_is_an_error(tok):
    import copy

    odd = copy.deepcopy(tok)
    # The last message is rendered differently from the same message followed by more turns.
    odd.chat_template = "{% for m in messages %}{% if loop.last %}LAST:{% endif %}{{ m['content'] }}|{% endfor %}"
    with pytest.raises(ValueError, match="generation"):
        encode_chat(odd, [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], 64)
