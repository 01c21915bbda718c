"""Content addresses of artifacts: hash(step name, kind, config, upstream addresses, code version).

The code version is the hash of the project modules the kind's step imports (its import
closure), so editing a component recomputes exactly the steps that use it.
"""
from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel

ENGINE_VERSION = "1"  # bump when the artifact layout itself changes


def code_version(kind_roots: tuple[str, ...], extra_packages: tuple[str, ...] = ()) -> str:
    """ENGINE_VERSION + the hash of the kind's import closure (``flows.engine.code_version``)."""
    from flows.engine.code_version import kind_modules, modules_hash

    return f"{ENGINE_VERSION}-{modules_hash(kind_modules(kind_roots, extra_packages))}"


def step_address(name: str, kind: str, config: BaseModel, inputs: dict[str, str], code: str) -> str:
    payload = {
        "name": name,
        "kind": kind,
        "config": config.model_dump(mode="json"),
        "inputs": dict(sorted(inputs.items())),
        "code": code,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
