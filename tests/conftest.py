"""Suite-wide set-up: the environment every test and Ray worker sees, the gpu skip, and the shared fixtures.

The fixtures live in tests/fixtures/ (one module per topic, see its __init__); expensive ones are
session-scoped and shared, so tests must not mutate what they get from them.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from flows.engine.cluster import WORKER_ENV

# What llmflow's own clusters give their workers (no hub downloads, Serve's mode); the test clusters inherit it.
for _key, _value in WORKER_ENV.items():
    os.environ.setdefault(_key, _value)
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
# Ray workers inherit the driver's environment, not pytest's sys.path: let them import tests.*
REPO_ROOT = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))

pytest_plugins = [
    "tests.fixtures.ray_cluster",
    "tests.fixtures.tiny_models",
    "tests.fixtures.hf_models",
    "tests.fixtures.rag_index",
    "tests.fixtures.mlflow_store",
]


def pytest_collection_modifyitems(config, items):
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
