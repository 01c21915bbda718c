"""Eval fixtures: an sft.dataset-shaped eval set, a tokenize.pack-shaped token artifact, a judge endpoint."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from components.artifacts import Tokens


@pytest.fixture(scope="session")
def eval_data_dir(tmp_path_factory, stdlib_texts) -> Path:
    out = tmp_path_factory.mktemp("sft_data")
    rows = []
    for i, text in enumerate(stdlib_texts[:12]):
        first = text.strip().split("\n")[0][:80]
        rows.append({"question": f"What does this section cover: {first}?", "answer": first, "source_id": f"doc-{i}"})
    (out / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


@pytest.fixture(scope="session")
def tokens_dir(tmp_path_factory, tiny_tokenizer_dir, stdlib_texts) -> Path:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    seq_len = 64
    ids = np.concatenate([tok(t, add_special_tokens=False)["input_ids"] for t in stdlib_texts[-5:]])
    blocks = ids[: (len(ids) // seq_len) * seq_len].reshape(-1, seq_len)[:16].astype(np.uint16)
    out = tmp_path_factory.mktemp("tokens")
    Tokens.write_blocks(out, {"val": [blocks]}, vocab_size=len(tok))
    return out


JUDGE_PORT = 18200


@pytest.fixture(scope="session")
def judge_url(tiny_model_dir):
    """A real OpenAI-compatible endpoint (uvicorn on loopback) serving the tiny Llama."""
    from tests.serve.hf_chat_server import BackgroundServer, build_app

    with BackgroundServer(build_app(tiny_model_dir), JUDGE_PORT) as url:
        yield url + "/v1"
