"""Integration: greedy outputs with speculative decoding (ngram, offline vllm.LLM) equal the served ones without.

The reference is the live app (spec off); the speculative side is one offline engine in a
subprocess (``python -m tests.serve.offline_engine``), so this costs one extra engine start, not two.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROMPTS = ["The module", "def f(x): return x + 1\ndef g(x): return", "a b c a b c a b c a b",
           "Lists are mutable. Tuples are"]


def test_ngram_greedy_equals_plain_greedy(client, llm_app_config):
    served = [client.completions.create(model="tiny", prompt=p, max_tokens=24, temperature=0,
                                        extra_body={"ignore_eos": True}).choices[0].text for p in PROMPTS]
    llm = llm_app_config.llm.model_dump(include={"model", "max_model_len", "max_num_seqs", "dtype", "seed"})
    llm["speculative"] = {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 3}
    request = {"llm": llm, "prompts": PROMPTS, "max_tokens": 24}
    proc = subprocess.run([sys.executable, "-m", "tests.serve.offline_engine", json.dumps(request)],
                          capture_output=True, check=False, text=True, timeout=400, cwd=os.getcwd(),
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert result["texts"] == served
    assert result["spec_totals"]["drafts"] > 0, "ngram speculation never proposed anything: the test proves nothing"
