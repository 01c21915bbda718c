"""The sft.dataset artifact's files (sft.jsonl, prompts.jsonl, eval.jsonl), as the sft and rl steps read them.

Models, adapters and docs are read through ``components.artifacts`` (``Model``, ``Adapter``, ``Docs``).
"""
from __future__ import annotations

from pathlib import Path


def data_file(artifact: str | Path, name: str) -> Path:
    path = Path(artifact) / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the data input must be an sft.dataset artifact")
    return path
