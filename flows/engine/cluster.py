"""Connecting to Ray: an existing cluster (--address / RAY_ADDRESS / recipe) or a local one.

A flow that starts a Serve app must outlive its driver, so for those we start a local
head with ``ray start --head`` (stopped by ``llmflow stop``) instead of ``ray.init()``'s
in-process cluster, which dies with the driver.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Workers inherit these: no hub downloads at run time; vLLM's CPU backend settings that
# PLATFORM_NOTES.md found necessary on small machines.
WORKER_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
    "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "nobind"),
}


def resolve_address(cli_address: str | None, recipe_address: str | None) -> str | None:
    return cli_address or os.environ.get("RAY_ADDRESS") or recipe_address


def connect(address: str | None, num_cpus: int, persistent: bool) -> bool:
    """Initialise Ray in this process; returns True if we own a cluster we should shut down."""
    import ray

    if ray.is_initialized():
        return False
    for k, v in WORKER_ENV.items():
        os.environ.setdefault(k, v)
    if address:
        ray.init(address=address, log_to_driver=True)
        return False
    if persistent:
        if not _local_head_running():
            subprocess.run([str(Path(sys.executable).with_name("ray")), "start", "--head",
                            f"--num-cpus={num_cpus}", "--include-dashboard=false", "--disable-usage-stats"],
                           check=True, capture_output=True)
        ray.init(address="auto", log_to_driver=True)
        return False
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)
    return True


def _local_head_running() -> bool:
    r = subprocess.run([str(Path(sys.executable).with_name("ray")), "status"], capture_output=True)
    return r.returncode == 0


def stop_local_head() -> None:
    subprocess.run([str(Path(sys.executable).with_name("ray")), "stop"], check=False)
