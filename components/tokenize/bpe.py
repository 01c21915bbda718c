"""Byte-level BPE tokenizer training, saved as a directory transformers and vLLM load as-is."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

BOS, EOS, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"
CHAT_TOKENS = ["<|user|>", "<|assistant|>", "<|system|>"]
SPECIAL_TOKENS = [BOS, EOS, PAD, *CHAT_TOKENS]

# A minimal chat template: role tags, then the message, then EOS. The assistant's turn
# is marked by {% generation %} so response-only loss masks can be computed by TRL.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}<|assistant|>\n{% generation %}{{ m['content'] }}<|end_of_text|>{% endgeneration %}\n"
    "{% else %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end_of_text|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | Path, min_frequency: int = 2):
    """Train a byte-level BPE on ``texts`` and save it (tokenizer.json + config + chat template)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        additional_special_tokens=CHAT_TOKENS, clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return fast


def tokenizer_sha256(tokenizer_dir: str | Path) -> str:
    """Content hash of a tokenizer: its tokenizer.json (vocab, merges, specials, normaliser) and config."""
    import hashlib

    tokenizer_dir = Path(tokenizer_dir)
    h = hashlib.sha256()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        path = tokenizer_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"{tokenizer_dir} has no {name}; is it a tokenizer directory "
                                    "(the output of tokenize.train or an HF model dir)?")
        h.update(name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def eos_token_id(tokenizer_dir: str | Path) -> int:
    """The EOS id a packed stream separates documents with, read from the tokenizer's own files."""
    import json

    from tokenizers import Tokenizer

    tokenizer_dir = Path(tokenizer_dir)
    cfg = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())
    eos = cfg.get("eos_token")
    if isinstance(eos, dict):
        eos = eos.get("content")
    token_id = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json")).token_to_id(eos) if eos else None
    if token_id is None:
        raise ValueError(f"tokenizer in {tokenizer_dir} has no eos_token; packing needs one to separate documents "
                         f"(train it with components.tokenize.bpe, which adds {EOS})")
    return token_id
