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
def sft_data_dir(tmp_path_factory) -> Path:
    """An sft.dataset artifact built from the stdlib docs."""
    from components.sft.config import SFTDatasetConfig
    from components.sft.steps import run_dataset
    from flows.engine.context import StepContext

    base = tmp_path_factory.getbasetemp()
    docs = tiny_lm.write_docs(base / "posttrain_docs")
    out = base / "posttrain_sft_data"
    run_dataset(StepContext.for_test(out, {"docs": docs}), SFTDatasetConfig(num_arithmetic_prompts=64))
    return out
