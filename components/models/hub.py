"""The one place that talks to the Hugging Face Hub: resolve a ``models.import`` source to a local directory.

A hub id is fetched through the standard cache (``HF_HOME``, ``HF_HUB_OFFLINE``) in two rounds: the small
files first (config, tokenizer, model card), so the import's checks run before any weight is downloaded,
then the weights the checks allowed.
"""
from __future__ import annotations

from pathlib import Path

METADATA_PATTERNS = ["*.json", "*.jinja", "tokenizer.model", "*.txt", "README.md", "LICENSE*", "NOTICE"]
SAFETENSORS_PATTERNS = ["*.safetensors", "*.safetensors.index.json"]
PICKLE_PATTERNS = ["pytorch_model*.bin", "*.pt", "*.pth"]


def is_local(source: str) -> bool:
    """A path (absolute, relative with ./ or ../, ~, or an existing folder) rather than a hub id."""
    return source.startswith(("/", ".", "~")) or Path(source).expanduser().exists() or source.count("/") != 1


def fetch_metadata(repo_id: str, revision: str | None) -> tuple[Path, str]:
    """(snapshot folder with the small files, the commit it is at); a clear error when unreachable."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=METADATA_PATTERNS))
    except Exception as e:  # noqa: BLE001 - offline, unknown repo, gated repo: the same advice applies
        raise ValueError(
            f"models.import source {repo_id!r}: cannot fetch it from the Hugging Face Hub ({type(e).__name__}: "
            f"{str(e)[:300]}). Without network, download it elsewhere (`hf download {repo_id} --local-dir DIR`) "
            "and set source to that directory; for a gated model, log in (`hf auth login`) first") from None
    return folder, folder.name  # the cache's snapshots/<commit> folder


def fetch_weights(repo_id: str, revision: str, allow_pickle: bool) -> Path:
    """Download the weights into the same snapshot (safetensors, or pickled files when allowed)."""
    from huggingface_hub import snapshot_download

    patterns = SAFETENSORS_PATTERNS + (PICKLE_PATTERNS if allow_pickle else [])
    return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))


def list_weight_files(repo_id: str, revision: str) -> list[str] | None:
    """The repository's weight file names, or None when the Hub cannot be asked (offline: use the cache)."""
    try:
        from huggingface_hub import HfApi

        files = HfApi().list_repo_files(repo_id, revision=revision)
    except Exception:  # noqa: BLE001 - offline: the checks then see what the cache holds
        return None
    return [f for f in files if f.endswith((".safetensors", ".bin", ".pt", ".pth"))]
