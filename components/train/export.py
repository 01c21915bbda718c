"""Write the trained weights as an HF directory (safetensors + config + tokenizer).

transformers and vLLM load the result as-is; its tokenizer is the copy the token shards
were made with, so ids always match.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch


def export_hf(state_dict: dict[str, torch.Tensor], model_config, tokenizer_dir: Path, out_dir: Path,
              dtype: torch.dtype) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    model_config.bos_token_id, model_config.eos_token_id, model_config.pad_token_id = (
        tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    model_config.use_cache = True  # training turned the KV cache off; generation wants it
    model = AutoModelForCausalLM.from_config(model_config)
    # Compiled layers carry an `_orig_mod.` prefix in their keys; the HF names are the plain ones.
    state_dict = {k.replace("_orig_mod.", ""): v for k, v in state_dict.items()}
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    missing = [k for k in missing if not (model_config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"export: weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})")
    if model_config.tie_word_embeddings:
        model.tie_weights()
    model.to(dtype)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    for extra in ("chat_template.jinja",):  # keep anything save_pretrained does not re-emit
        if (Path(tokenizer_dir) / extra).exists() and not (out_dir / extra).exists():
            shutil.copy(Path(tokenizer_dir) / extra, out_dir / extra)
    return out_dir
