"""The BPE tokenizer: round trip, special tokens, chat template, loading in transformers, the train step."""
from __future__ import annotations

import json

import pytest

from components.tokenize.bpe import (
    BOS,
    CHAT_TOKENS,
    EOS,
    PAD,
    eos_token_id,
    tokenizer_sha256,
)
from components.tokenize.config import TrainTokenizerConfig
from components.tokenize.steps import run_train, tokenizer_dir_of
from flows.engine.context import StepContext

SAMPLES = [
    "def f(x):\n    return {x: [1, 2.5]}  # comment\n",
    "Unicode: café, naïve, 東京, emoji 🐍, tabs\tand  double  spaces.",
    "The import statement combines two operations; it searches for the named module.",
]


def test_round_trip_and_special_tokens(tiny_tokenizer_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_tokenizer_dir / "tokenizer.json"))
    for text in SAMPLES:
        assert tok.decode(tok.encode(text, add_special_tokens=False).ids, skip_special_tokens=False) == text
    for special in (BOS, EOS, PAD, *CHAT_TOKENS):
        assert len(tok.encode(special, add_special_tokens=False).ids) == 1, f"{special} is split"
    assert eos_token_id(tiny_tokenizer_dir) == tok.token_to_id(EOS)


def test_loads_in_transformers_with_chat_template(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (BOS, EOS, PAD)
    assert tok.decode(tok(SAMPLES[0], add_special_tokens=False)["input_ids"]) == SAMPLES[0]
    chat = tok.apply_chat_template([{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}],
                                   tokenize=False)
    assert chat.startswith(f"<|user|>\nHi?{EOS}\n<|assistant|>\nHello.{EOS}")
    prompt = tok.apply_chat_template([{"role": "user", "content": "Hi?"}], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|assistant|>\n")


def test_tokenizer_hash_tracks_content(tmp_path, tiny_tokenizer_dir):
    import shutil

    copy = tmp_path / "tok"
    shutil.copytree(tiny_tokenizer_dir, copy)
    assert tokenizer_sha256(copy) == tokenizer_sha256(tiny_tokenizer_dir)
    cfg = json.loads((copy / "tokenizer_config.json").read_text())
    cfg["model_max_length"] = 123
    (copy / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert tokenizer_sha256(copy) != tokenizer_sha256(tiny_tokenizer_dir)
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        tokenizer_sha256(tmp_path)


def test_train_step_writes_a_tokenizer_dir(tmp_path, docs_artifact):
    ctx = StepContext.for_test(tmp_path / "out", {"docs": docs_artifact})
    metrics = run_train(ctx, TrainTokenizerConfig(vocab_size=512, max_train_chars=50_000))
    assert metrics["vocab_size"] == 512 and metrics["num_train_chars"] == 50_000
    tok_dir = tokenizer_dir_of(tmp_path / "out")
    assert tok_dir == tmp_path / "out" / "tokenizer" and (tok_dir / "tokenizer.json").is_file()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["tokenizer_sha256"] == tokenizer_sha256(tok_dir)


def test_train_config_is_strict():
    with pytest.raises(ValueError):
        TrainTokenizerConfig(vocab_size=100)
    with pytest.raises(ValueError, match="extra"):
        TrainTokenizerConfig(vocab=1000)
