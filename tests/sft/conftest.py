"""Session fixtures of the sft tests: an sft.dataset artifact of the stdlib docs (the tiny LMs are in tests/fixtures)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import tiny_lm


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
