"""Content addresses of artifacts: hash(step name, kind, config, upstream addresses, code version).

The code version is the hash of the source files of the packages a kind declares, so
editing a component recomputes exactly the steps that use it.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from functools import cache
from pathlib import Path

from pydantic import BaseModel

ENGINE_VERSION = "1"  # bump when the artifact layout itself changes


@cache
def package_hash(package: str) -> str:
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise ModuleNotFoundError(package)
    if spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations)))
        files = sorted(root.rglob("*.py"))
    else:
        root = Path(spec.origin).parent
        files = [Path(spec.origin)]
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def code_version(packages: tuple[str, ...]) -> str:
    return "-".join([ENGINE_VERSION] + [package_hash(p) for p in packages])


def step_address(name: str, kind: str, config: BaseModel, inputs: dict[str, str], code: str) -> str:
    payload = {
        "name": name,
        "kind": kind,
        "config": config.model_dump(mode="json"),
        "inputs": dict(sorted(inputs.items())),
        "code": code,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
