"""Whether two models can work as target and draft of speculative decoding: the draft proposes token ids
that the target verifies, so both must read and write the same vocabulary, token for token.

    check_draft("artifacts/sft/merged", "artifacts/draft/model")   # raises DraftMismatchError, or returns
"""
from __future__ import annotations

import json
from pathlib import Path


# The files that define a tokenizer, copied byte for byte from a target to its draft.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "merges.txt",
                   "special_tokens_map.json", "added_tokens.json", "chat_template.jinja", "chat_template.json")


def copy_tokenizer_files(source_dir: str | Path, target_dir: str | Path) -> None:
    """Give ``target_dir`` exactly the tokenizer of ``source_dir`` (re-saving through the tokenizer class
    transformers picks by model_type may add tokens of its own, e.g. Qwen2's <|endoftext|>)."""
    import shutil

    for name in TOKENIZER_FILES:
        if (Path(source_dir) / name).is_file():
            shutil.copy2(Path(source_dir) / name, Path(target_dir) / name)


class DraftMismatchError(ValueError):
    """A draft model whose tokenizer or vocabulary differs from its target's."""


def check_draft(target_dir: str | Path, draft_dir: str | Path) -> None:
    """Refuse a draft whose embedding size, token→id map or special tokens differ from the target's."""
    from transformers import AutoTokenizer

    target_dir, draft_dir = Path(target_dir), Path(draft_dir)
    fix = ("distil a draft from this target (distill.draft with the target as its `model` input: the draft "
           "keeps the target's tokenizer), or serve without speculative decoding")
    sizes = [json.loads((d / "config.json").read_text()).get("vocab_size") for d in (target_dir, draft_dir)]
    if sizes[0] != sizes[1]:
        raise DraftMismatchError(f"draft {draft_dir} has vocab_size {sizes[1]}, its target {target_dir} has "
                                 f"{sizes[0]}: speculative decoding needs one vocabulary; {fix}")
    target, draft = AutoTokenizer.from_pretrained(target_dir), AutoTokenizer.from_pretrained(draft_dir)
    target_vocab, draft_vocab = _vocab(target_dir, target), _vocab(draft_dir, draft)
    if target_vocab != draft_vocab:
        differ = sorted({t for t in target_vocab.keys() ^ draft_vocab.keys()}
                        | {t for t in target_vocab.keys() & draft_vocab.keys() if target_vocab[t] != draft_vocab[t]})
        raise DraftMismatchError(f"draft {draft_dir} has another tokenizer than its target {target_dir}: "
                                 f"{len(differ)} token(s) differ or map to other ids (e.g. {differ[:5]}); {fix}")
    specials = [(t.bos_token_id, t.eos_token_id, t.pad_token_id) for t in (target, draft)]
    if specials[0] != specials[1]:
        raise DraftMismatchError(f"draft {draft_dir} has special token ids (bos, eos, pad) {specials[1]}, its "
                                 f"target {target_dir} has {specials[0]}; {fix}")


def _vocab(model_dir: Path, tokenizer) -> dict[str, int]:
    """The token→id map as the files define it: tokenizer.json's when there is one (transformers may pick a
    tokenizer class by model_type that adds tokens of its own, which vLLM's target tokenizer decides anyway)."""
    path = model_dir / "tokenizer.json"
    if path.is_file():
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(path)).get_vocab(with_added_tokens=True)
    return tokenizer.get_vocab()
