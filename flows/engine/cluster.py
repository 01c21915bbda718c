"""Connecting to Ray: an existing cluster (--address / RAY_ADDRESS / recipe) or a local one.

A flow that starts a Serve app must outlive its driver, so for those we start a local
head with ``ray start --head --block`` in its own process group (its address, pid and
temp dir kept in ``.llmflow/ray_head.json``, stopped by ``llmflow stop``) instead of
``ray.init()``'s in-process cluster, which dies with the driver.

Ray 2.60 runs local clusters in token-auth mode. Its default token lives in
``~/.ray/auth_token``, which a machine where Ray never ran does not have (``ray start``
then fails). Unless the user chose a token (``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH``)
or turned auth off (``RAY_AUTH_MODE=disabled``), the project keeps its own token in
``.llmflow/secrets/ray_auth_token`` and hands it to the head, the driver and ``llmflow stop``.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flows.engine.local_secrets import read_or_create_secret

# Serve on llmflow's own (single-node) clusters runs in its throughput mode: user code on the
# replica's event loop, gRPC from the proxy to replicas, direct ingress, buffered request logs. On 2
# cores it cut the Serve path's CPU per streamed token from 1.49x to 1.31x of bare `vllm serve` and
# brought concurrency 1 from 0.76 to 1.14x bare's tokens/s (benchmarks/RESULTS.md, issue 20). Serve
# reads these when its processes start, so they must be in the head's environment. Two of the mode's
# defaults are put back: handle routers keep their own event loop (the mode puts them on the caller's,
# where a handle used from a plain script raises RuntimeError), and an ingress replica stops without
# the 30 s drain that lets an external load balancer deregister it (there is none on a local head;
# with it every app's teardown took ~30 s longer). Shared clusters (cluster/rayservice.yaml) keep Serve's defaults.
SERVE_ENV = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "1",
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "0",
}
# Workers inherit these: no hub downloads at run time, no tokenizer thread pools in Ray workers.
# Engine settings (vLLM's CPU backend) belong to the code that starts an engine: serve/llm/config.py
# CPU_ENGINE_ENV for Serve and offline generation, components/rl/rollout.py for rollouts.
WORKER_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    **SERVE_ENV,
}
HEAD_START_TIMEOUT_S = 180.0
# The local heads run without Ray's dashboard (an idle dashboard cost 10-15% of a 2-core laptop), so
# Ray Train's placement-group cleaner, which asks the dashboard's state API whether the train
# controller is alive, warns every few seconds for as long as training runs (135 lines in one e2e
# pretraining). It has nothing to report there; its warnings are dropped in those clusters' workers.
LOCAL_RUNTIME_ENV = {"worker_process_setup_hook": "flows.engine.cluster.quiet_workers"}


def quiet_workers() -> None:
    """Worker setup hook of the dashboard-less local clusters (see LOCAL_RUNTIME_ENV)."""
    import logging

    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").setLevel(logging.ERROR)


def _ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


def head_file(workdir: Path) -> Path:
    return workdir / ".llmflow" / "ray_head.json"


def token_file(workdir: Path) -> Path:
    return workdir / ".llmflow" / "secrets" / "ray_auth_token"


def resolve_address(cli_address: str | None, recipe_address: str | None) -> str | None:
    return cli_address or os.environ.get("RAY_ADDRESS") or recipe_address


def ray_auth_env(workdir: Path) -> dict[str, str]:
    """The auth variables every Ray process of this project gets; creates the project token once.

    Empty when the user decided (their own token, or auth off): then Ray's own rules apply.
    """
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return {}
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return {"RAY_AUTH_MODE": "token"}
    path = token_file(workdir)
    read_or_create_secret(path, lambda: secrets.token_hex(32))
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(path)}


def use_auth(workdir: Path) -> dict[str, str]:
    """Put the project's Ray auth settings into this process's environment (before Ray reads them)."""
    env = ray_auth_env(workdir)
    os.environ.update(env)
    if env and "ray" in sys.modules:
        # Ray caches its auth config at import; a driver that imported Ray earlier must re-read it.
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    return env


def connect(address: str | None, num_cpus: int, persistent: bool, workdir: Path) -> bool:
    """Initialise Ray in this process; returns True if we own a cluster we should shut down."""
    import ray

    if ray.is_initialized():
        return False
    if not address:
        use_auth(workdir)
    for k, v in WORKER_ENV.items():
        os.environ.setdefault(k, v)
    if address:
        ray.init(address=address, log_to_driver=True)
        return False
    if persistent:
        ray.init(address=ensure_local_head(workdir, num_cpus), log_to_driver=True, runtime_env=LOCAL_RUNTIME_ENV)
        return False
    # address="local": a new in-process cluster, never one a `ray start` left running here.
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=True,
             runtime_env=LOCAL_RUNTIME_ENV)
    return True


def _temp_dir(workdir: Path) -> Path:
    # Ray puts Unix sockets under its temp dir (path limit ~107 bytes), so not under a deep
    # workdir; one per project, so `llmflow stop` finds exactly this project's processes.
    digest = hashlib.sha1(str(workdir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"llmflow-ray-{digest}"


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _head_info(workdir: Path) -> dict | None:
    f = head_file(workdir)
    return json.loads(f.read_text()) if f.exists() else None


def ensure_local_head(workdir: Path, num_cpus: int) -> str:
    """The address of this project's local Ray head, started if it is not running."""
    info = _head_info(workdir)
    if info and info.get("pid") and _alive(info["pid"]):
        return info["address"]
    if info:  # a head that died (reboot, OOM): clean its leftovers before starting another
        stop_local_head(workdir)
    port, client_port, dashboard_port = _free_ports(3)
    temp_dir = _temp_dir(workdir)
    log = workdir / ".llmflow" / "ray_head.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **ray_auth_env(workdir)}
    # --block keeps `ray start` as the parent of the head's processes, and a new session makes
    # them one process group: `llmflow stop` ends this cluster, never another Ray of this user.
    # Loopback only: a laptop's flow needs no other host, and the address stays the one we saved.
    cmd = [_ray_cli(), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
           f"--num-cpus={num_cpus}", "--include-dashboard=false", "--disable-usage-stats",
           f"--temp-dir={temp_dir}",
           # Ray's fixed defaults (10001, 8265) would collide with a second cluster on this machine.
           f"--ray-client-server-port={client_port}", f"--dashboard-port={dashboard_port}"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                cwd=workdir)
    address = f"127.0.0.1:{port}"
    head_file(workdir).write_text(json.dumps({"address": address, "pid": proc.pid, "temp_dir": str(temp_dir),
                                              "token_path": env.get("RAY_AUTH_TOKEN_PATH"), "log": str(log)}))
    deadline = time.monotonic() + HEAD_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            head_file(workdir).unlink(missing_ok=True)
            raise RuntimeError(f"`ray start --head` exited with {proc.returncode}; its log ({log}):\n"
                               f"{log.read_text()[-3000:]}")
        if "Ray runtime started" in log.read_text(errors="replace"):
            return address
        time.sleep(0.5)
    stop_local_head(workdir)
    raise RuntimeError(f"the local Ray head did not start within {HEAD_START_TIMEOUT_S:.0f} s; see {log}")


def stop_local_head(workdir: Path) -> bool:
    """Stop the head `llmflow run` started (and the Serve app on it). Returns False if none ran."""
    info = _head_info(workdir)
    if info is None:
        return False
    env = {**os.environ, **ray_auth_env(workdir)}
    pid = info.get("pid")
    if pid and _alive(pid):
        _shutdown_serve(info["address"], env)
        _kill_tree(pid)
    head_file(workdir).unlink(missing_ok=True)
    return True


def _kill_tree(pid: int, grace_s: float = 15.0) -> None:
    """SIGTERM the head and every process under it, then SIGKILL what is left.

    The tree, not the process group: Ray workers (and the vLLM engines they spawn) run in
    their own process groups, but all descend from this head's raylet.
    """
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


# Deleting the apps first lets each LLM replica shut its vLLM engine-core process down; killing
# the replicas outright leaves those children running (seen: one orphaned engine per stopped
# stack, each holding its KV cache).
_SHUTDOWN_SERVE = """
import sys
import ray
from ray import serve
ray.init(address=sys.argv[1], log_to_driver=False)
serve.shutdown()
"""


def _shutdown_serve(address: str, env: dict[str, str], timeout_s: float = 120) -> None:
    try:
        subprocess.run([sys.executable, "-c", _SHUTDOWN_SERVE, address], check=False, capture_output=True,
                       timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        pass  # a wedged Serve must not block the stop; killing the process group follows
