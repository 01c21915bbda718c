"""The embedder's dtype: bf16 only where the CPU multiplies it natively, overridable, and its vectors
unit-norm float32 and (near) the fp32 ones either way."""
from __future__ import annotations

import numpy as np
import pytest

from components.rag.embed import DTYPE_ENV, Embedder, embed_dtype

TEXTS = ["How do I open a file for reading?", "The with statement closes the file for you.",
         "Lists are mutable; tuples are not."]


def test_dtype_env_overrides_and_a_typo_names_the_variable(monkeypatch):
    monkeypatch.setenv(DTYPE_ENV, "fp32")
    assert embed_dtype("cpu") == "fp32"
    monkeypatch.setenv(DTYPE_ENV, "bf16")
    assert embed_dtype("cpu") == "bf16"
    monkeypatch.setenv(DTYPE_ENV, "float16")
    with pytest.raises(ValueError, match=DTYPE_ENV):
        embed_dtype("cpu")


def test_auto_is_fp32_off_cpu_and_follows_the_cpu(monkeypatch):
    import torch

    monkeypatch.delenv(DTYPE_ENV, raising=False)
    assert embed_dtype("cuda") == "fp32"
    assert embed_dtype("cpu") == ("bf16" if torch.cpu._is_avx512_bf16_supported() else "fp32")  # no AMX here
    # AVX512 without its BF16 extension (Skylake/Cascade Lake): oneDNN emulates bf16, slower than fp32
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    assert embed_dtype("cpu") == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert embed_dtype("cpu") == "bf16"


def test_an_explicit_dtype_wins_over_the_environment_and_a_wrong_one_is_refused(monkeypatch):
    monkeypatch.setenv(DTYPE_ENV, "bf16")
    assert Embedder(dtype="fp32").dtype == "fp32"
    with pytest.raises(ValueError, match="dtype='fp16'"):
        Embedder(dtype="fp16")


def test_bf16_vectors_are_unit_float32_and_match_fp32(monkeypatch):
    monkeypatch.setenv(DTYPE_ENV, "fp32")
    full = Embedder().embed(TEXTS)
    monkeypatch.setenv(DTYPE_ENV, "bf16")
    half = Embedder()
    assert half.dtype == "bf16"
    vecs = half.embed(TEXTS)
    assert vecs.dtype == np.float32 and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert (full * vecs).sum(axis=1).min() > 0.999
