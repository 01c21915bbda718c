"""PII canaries through the whole e2e path: a user corpus with planted e-mail addresses, phone
numbers, IBANs and card numbers goes through data, index, SFT, serving and online evaluation, and
no canary comes out anywhere: not in an artifact (parquet cells, token shards decoded, Qdrant's
local storage), not in MLflow (params, metrics, tags, traces, artifacts), not in a served answer.

The canary documents must reach the index (scrubbed), so "no canary" proves scrubbing, not absence.
``e2e_stack`` (tests/flows/conftest.py) runs the e2e recipe with the canary folder as a
``data.corpus`` path and keeps the stack serving.
"""
from __future__ import annotations

import gzip
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.flows.pii_canaries import MARKERS, QUESTIONS, TITLES

pytestmark = pytest.mark.integration

PLACEHOLDERS = ("<EMAIL>", "<PHONE>", "<IBAN>", "<CREDIT_CARD>")


def _post(url: str, key: str, body: dict, timeout_s: float = 120.0) -> dict:
    import httpx

    r = httpx.post(url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=timeout_s)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    return r.json()


@pytest.fixture(scope="module")
def answers(e2e_stack) -> list[dict]:
    """The router's full JSON answer to each question about the canary documents' topics."""
    url = e2e_stack["rag_url"].rstrip("/") + "/chat/completions"
    return [_post(url, e2e_stack["api_key"], {"model": "llmflow-rag", "max_tokens": 48,
                                              "messages": [{"role": "user", "content": q}]}) for q in QUESTIONS]


def _found(canaries: list[str], units: Iterator[tuple[str, bytes]]) -> list[tuple[str, str]]:
    needles = [(c, c.encode()) for c in canaries]
    return [(where, c) for where, blob in units for c, b in needles if b in blob]


def _sqlite_units(path: Path) -> Iterator[tuple[str, bytes]]:
    """Every cell of every table: a long value spills over pages, so the raw file could split a canary."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in con.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, str):
                        yield f"{path}:{table}", value.encode()
                    elif isinstance(value, bytes):
                        yield f"{path}:{table}", value
    finally:
        con.close()


def _parquet_units(path: Path) -> Iterator[tuple[str, bytes]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    for name in table.column_names:
        if pa.types.is_string(table.schema.field(name).type) or pa.types.is_large_string(table.schema.field(name).type):
            yield f"{path}:{name}", "\n".join(v or "" for v in table.column(name).to_pylist()).encode()


def _token_shard_units(tokens_dir: Path) -> Iterator[tuple[str, bytes]]:
    """tokenize.pack's shards decoded back to text: a byte search cannot see text stored as token ids."""
    import numpy as np
    from tokenizers import Tokenizer

    from components.artifacts import Tokens

    dtype = np.dtype(Tokens.read(tokens_dir).dtype)
    tok = Tokenizer.from_file(str(tokens_dir / "tokenizer" / "tokenizer.json"))
    for shard in sorted(tokens_dir.rglob("*.bin")):
        ids = np.fromfile(shard, dtype=dtype).tolist()
        yield str(shard), tok.decode(ids, skip_special_tokens=True).encode()


def _units(root: Path) -> Iterator[tuple[str, bytes]]:
    """Every piece of text under ``root`` in a searchable form."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        with path.open("rb") as f:
            head = f.read(16)
        if head.startswith(b"SQLite format 3"):
            yield from _sqlite_units(path)
        elif path.suffix == ".parquet":
            yield from _parquet_units(path)
        elif path.name == "manifest.json" and (path.parent / "tokenizer" / "tokenizer.json").exists():
            yield from _token_shard_units(path.parent)
        if head.startswith(b"\x1f\x8b"):
            yield str(path), gzip.decompress(path.read_bytes())
        # Raw bytes too (also for sqlite files: their -wal and journal hold pages not yet merged).
        yield str(path), path.read_bytes()


def test_canary_documents_were_retrieved_by_the_router(answers):
    """Each question about a canary topic retrieves a canary document (by title)."""
    for question, answer in zip(QUESTIONS, answers):
        retrieved = {s["title"] for s in answer["rag"]["retrieved"]}
        assert retrieved & set(TITLES), (question, retrieved)


def test_canary_documents_are_in_the_index_scrubbed(e2e_stack):
    index_dir = Path(e2e_stack["state"]["steps"]["index"]["uri"])
    scrubbed = [where for where, blob in _units(index_dir)
                if any(m.encode() in blob for m in MARKERS) and any(p.encode() in blob for p in PLACEHOLDERS)]
    assert scrubbed, f"no scrubbed canary document in the index at {index_dir}"
    assert not _found(e2e_stack["canaries"], _units(index_dir))


def test_no_served_answer_holds_a_canary(e2e_stack, answers):
    assert not _found(e2e_stack["canaries"], ((a["id"], json.dumps(a).encode()) for a in answers))


def test_online_eval_traced_the_questions_without_canaries(e2e_stack, answers):
    """Every request is traced (sample_rate 1.0 in the e2e stack) into the flow's MLflow store: spans
    in mlflow.db, anything logged as an artifact under mlartifacts/. Tracing is asynchronous: wait."""
    workdir = Path(e2e_stack["workdir"])

    def tracking_units():
        yield from _sqlite_units(workdir / "mlflow.db")
        if (workdir / "mlartifacts").is_dir():
            yield from _units(workdir / "mlartifacts")

    deadline = time.monotonic() + 120
    while True:
        blobs = [b for _, b in tracking_units()]
        traced = [q for q in QUESTIONS if any(q.encode() in b for b in blobs)]
        if len(traced) == len(QUESTIONS) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert traced == list(QUESTIONS), "the online evaluation did not trace every question"
    assert not _found(e2e_stack["canaries"], tracking_units())


def test_no_file_of_the_flow_holds_a_canary(e2e_stack, answers):
    """Artifacts (incl. parquet cells and decoded token shards), Qdrant storage, mlflow.db and
    mlartifacts: after the questions, so the online evaluation's traces are included."""
    workdir = Path(e2e_stack["workdir"])
    canary_folder = workdir / "user_corpus"  # the user's own input: the only place the canaries may be
    found = [(w, c) for w, c in _found(e2e_stack["canaries"], _units(workdir))
             if not w.startswith(str(canary_folder))]
    assert not found, found[:20]
