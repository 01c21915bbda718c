"""Session fixtures for post-training tests: a tiny LM that has learned something (built once per session)."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest


def _tiny_lm():
    spec = importlib.util.spec_from_file_location("posttrain_tiny_lm", Path(__file__).parents[1] / "sft" / "tiny_lm.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


tiny_lm = _tiny_lm()


@pytest.fixture(scope="session")
def trained_lm_dir(tmp_path_factory, tiny_tokenizer_dir, stdlib_texts) -> Path:
    """Debug-preset Llama trained 200 steps (seq 64, batch 8, seed 0) on the docs + chat-format arithmetic."""
    # LLMFLOW_POSTTRAIN_CACHE lets a developer reuse the (deterministic) model across sessions.
    cache = Path(os.environ.get("LLMFLOW_POSTTRAIN_CACHE") or tmp_path_factory.getbasetemp())
    return tiny_lm.build_tiny_lm(cache, tiny_tokenizer_dir, stdlib_texts,
                                 steps=200, seq_len=64, batch_size=8)


@pytest.fixture(scope="session")
def prefs_dir(tmp_path_factory) -> Path:
    """Preference pairs in the online-eval export format: a bare number is preferred over hedging prose."""
    import json
    import random

    from components.sft.dataset import arithmetic_prompts

    rng = random.Random(0)
    hedges = ["I am not sure about that.", "Let me think about it for a while.", "That is a hard question to answer.",
              "Numbers are not my strength, sorry.", "It depends on the context."]
    out = tmp_path_factory.mktemp("prefs")
    with open(out / "pairs.jsonl", "w") as f:
        f.writelines(json.dumps({"prompt": r["prompt"], "chosen": r["answer"], "rejected": rng.choice(hedges)}) + "\n" for r in arithmetic_prompts(80, 20, seed=1))
    return out


@pytest.fixture(scope="session")
def prompts_dir(tmp_path_factory) -> Path:
    """prompts.jsonl with checkable arithmetic answers (as sft.dataset writes it)."""
    from components.sft.dataset import arithmetic_prompts, write_jsonl

    out = tmp_path_factory.mktemp("grpo_data")
    write_jsonl(out / "prompts.jsonl", arithmetic_prompts(128, 20, seed=2))
    return out
