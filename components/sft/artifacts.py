"""Where things live inside upstream artifacts (layouts fixed by the stage contract)."""
from __future__ import annotations

from pathlib import Path


def model_dir(artifact: str | Path) -> Path:
    """The HF model directory of a ``model`` artifact (``<artifact>/model``) or a bare HF dir."""
    artifact = Path(artifact)
    for cand in (artifact / "model", artifact):
        if (cand / "config.json").exists():
            return cand
    raise FileNotFoundError(f"no HF model in {artifact}: expected {artifact}/model/config.json "
                            "(the layout train.pretrain writes) or config.json directly in it")


def adapter_dir(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    for cand in (artifact / "adapter", artifact):
        if (cand / "adapter_config.json").exists():
            return cand
    raise FileNotFoundError(f"no PEFT adapter in {artifact}: expected {artifact}/adapter/adapter_config.json")


def docs_parquet(artifact: str | Path) -> list[Path]:
    files = sorted(Path(artifact).glob("docs/part-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no {artifact}/docs/part-*.parquet: the docs input must be a data.corpus/clean/dedup artifact")
    return files


def read_docs(artifact: str | Path) -> list[dict]:
    import pyarrow.parquet as pq

    rows: list[dict] = []
    for f in docs_parquet(artifact):
        rows.extend(pq.read_table(f, columns=["id", "text", "source", "title"]).to_pylist())
    return rows


def data_file(artifact: str | Path, name: str) -> Path:
    path = Path(artifact) / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the data input must be an sft.dataset artifact")
    return path
