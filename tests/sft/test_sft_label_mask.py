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


def test_template_without_generation_markers_is_an_error(tok):
    import copy

    plain = copy.deepcopy(tok)
    plain.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(ValueError, match="generation"):
        encode_chat(plain, [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], 64)


def test_collate_pads_labels_with_ignore(tok):
    a = encode_chat(tok, [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], 64)
    b = encode_chat(tok, [{"role": "user", "content": "a longer question"}, {"role": "assistant", "content": "c"}], 64)
    batch = collate([a, b], tok.pad_token_id)
    short = len(a["input_ids"])
    assert (batch["labels"][0, short:] == IGNORE).all() and (batch["attention_mask"][0, short:] == 0).all()
