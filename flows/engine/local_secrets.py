"""Secrets the project keeps for itself under ``<workdir>/.llmflow/secrets`` (Ray's auth token, the
serving stack's API key): created once, readable only by the user, never rotated behind a user's back."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def read_or_create_secret(path: str | Path, generate: Callable[[], str]) -> str:
    """The secret stored at ``path``; created with ``generate()`` (file 0600, folder 0700) when missing."""
    path = Path(path)
    if path.exists():
        value = path.read_text().strip()
        if not value:
            raise ValueError(f"the secret file {path} is empty: delete it (a new one is created) or write one")
        return value
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    # O_EXCL: two processes racing to create it cannot both write one; the loser reads the winner's.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_or_create_secret(path, generate)
    value = generate()
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value
