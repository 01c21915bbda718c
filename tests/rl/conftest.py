"""Session fixtures for post-training tests: a tiny LM that has learned something (built once per session)."""
from __future__ import annotations

from pathlib import Path

import pytest


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
