"""The serving stack's bearer key: where a flow keeps it, and how each step finds it.

One key covers every app of the stack (LLM app and RAG router). ``LLMServeConfig.api_key_env``
names the variable that holds it. In a flow, ``serve.deploy`` uses that variable when it is set
and otherwise reads or creates ``<workdir>/.llmflow/secrets/api_key`` (mode 0600), so a fresh
``make run`` is authenticated without any setup; endpoint.json records the variable's name and
the file's path, never the key. Later steps (``serve.rag``, ``serve.smoke``) and users read the
key back through ``endpoint_api_key``::

    export LLMFLOW_API_KEY=$(cat .llmflow/secrets/api_key)
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from components.artifacts import Endpoint
from flows.engine.local_secrets import read_or_create_secret

KEY_FILE_NAME = "api_key"


def secrets_dir(state_dir: str | Path) -> Path:
    """``<workdir>/.llmflow/secrets`` for the flow's ``<workdir>/.llmflow/state``."""
    return Path(state_dir).parent / "secrets"


def read_or_create_key(path: str | Path) -> str:
    """The key stored at ``path``, created (random, 0600, folder 0700) when the file does not exist yet."""
    return read_or_create_secret(path, lambda: secrets.token_urlsafe(32))


def flow_api_key(api_key_env: str | None, state_dir: str | Path | None) -> tuple[str | None, Path | None]:
    """(key, key file) for a flow's serving stack: the variable's value when set, else the flow's key file.

    ``api_key_env=None`` means no auth: (None, None)."""
    if api_key_env is None:
        return None, None
    if os.environ.get(api_key_env):
        return os.environ[api_key_env], None
    if state_dir is None:
        raise ValueError(f"api_key_env={api_key_env!r} is unset and this step has no flow state folder to keep a "
                         f"key in: export {api_key_env}=<key>, or set api_key_env: null to serve without auth")
    path = secrets_dir(state_dir) / KEY_FILE_NAME
    return read_or_create_key(path), path


def endpoint_api_key(endpoint: Endpoint) -> str | None:
    """The bearer key of a running app from its endpoint.json: its variable if set, else its key file."""
    name = endpoint.api_key_env
    if not name:
        return None
    if os.environ.get(name):
        return os.environ[name]
    if endpoint.api_key_file and Path(endpoint.api_key_file).exists():
        return Path(endpoint.api_key_file).read_text().strip()
    raise ValueError(f"the endpoint needs the API key in ${name}, which is unset, and records no readable key file "
                     f"({endpoint.api_key_file}): export {name}=<key>")
