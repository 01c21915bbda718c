"""Connecting to Ray: an existing cluster (--address / RAY_ADDRESS / recipe) or a local one.

A flow that starts a Serve app must outlive its driver, so for those we start a local
head with ``ray start --head`` (its address kept in ``.llmflow/ray_head.json``, stopped by
``llmflow stop``) instead of ``ray.init()``'s in-process cluster, which dies with the driver.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

# Workers inherit these: no hub downloads at run time; vLLM's CPU backend settings that
# PLATFORM_NOTES.md found necessary on small machines.
WORKER_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
}


def _ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


def head_file(workdir: Path) -> Path:
    return workdir / ".llmflow" / "ray_head.json"


def resolve_address(cli_address: str | None, recipe_address: str | None) -> str | None:
    return cli_address or os.environ.get("RAY_ADDRESS") or recipe_address


def connect(address: str | None, num_cpus: int, persistent: bool, workdir: Path) -> bool:
    """Initialise Ray in this process; returns True if we own a cluster we should shut down."""
    if persistent and not address:
        # Ray 2.60 turns token auth on for a `ray start` head when ~/.ray/auth_token exists, but a
        # driver connecting by address sends the token only in token mode, read when ray is imported.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    import ray

    if ray.is_initialized():
        return False
    for k, v in WORKER_ENV.items():
        os.environ.setdefault(k, v)
    if address:
        ray.init(address=address, log_to_driver=True)
        return False
    if persistent:
        ray.init(address=ensure_local_head(workdir, num_cpus), log_to_driver=True)
        return False
    # address="local": a new in-process cluster, never one a `ray start` left running here.
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)
    return True


def ensure_local_head(workdir: Path, num_cpus: int) -> str:
    """The address of this project's local Ray head, started if it is not running."""
    f = head_file(workdir)
    if f.exists():
        address = json.loads(f.read_text())["address"]
        alive = subprocess.run([_ray_cli(), "status", "--address", address], capture_output=True, check=False)
        if alive.returncode == 0:
            return address
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Loopback only: a laptop's flow needs no other host, and the address stays the one we saved.
    r = subprocess.run([_ray_cli(), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                        f"--num-cpus={num_cpus}", "--include-dashboard=false", "--disable-usage-stats"],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"`ray start --head` failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    address = f"127.0.0.1:{port}"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps({"address": address}))
    return address


def stop_local_head(workdir: Path) -> bool:
    """Stop the head `llmflow run` started (and the Serve app on it). Returns False if none ran."""
    f = head_file(workdir)
    if not f.exists():
        return False
    _shutdown_serve(json.loads(f.read_text())["address"])
    # `ray stop` has no per-cluster form; it stops the Ray processes of this machine's user.
    subprocess.run([_ray_cli(), "stop", "--force"], check=False, capture_output=True)
    f.unlink()
    return True


# Deleting the apps first lets each LLM replica shut its vLLM engine-core process down; a bare
# `ray stop --force` kills the replicas and leaves those children running (seen: one orphaned
# engine per stopped stack, each holding its KV cache).
_SHUTDOWN_SERVE = """
import os, sys
os.environ.setdefault("RAY_AUTH_MODE", "token")
import ray
from ray import serve
ray.init(address=sys.argv[1], log_to_driver=False)
serve.shutdown()
"""


def _shutdown_serve(address: str, timeout_s: float = 120) -> None:
    try:
        subprocess.run([sys.executable, "-c", _SHUTDOWN_SERVE, address], check=False, capture_output=True,
                       timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pass  # a wedged Serve must not block the stop; `ray stop --force` follows
