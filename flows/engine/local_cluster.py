"""A multi-node Ray cluster on one machine: a head and N worker nodes, each its own ``ray start``.

    llmflow cluster up                    # head + 2 worker nodes on 127.0.0.1, ports 18750–18794
    RAY_ADDRESS=http://127.0.0.1:18751 llmflow submit demo
    llmflow cluster down                  # ends exactly these nodes' processes

What a laptop can show of scale-out: separate raylets, object stores and runtime-env agents
that only talk over loopback, so tasks, Ray Train workers and Serve replicas really are
spread over nodes (each node carries a custom resource ``llmflow_<node>`` to make placement
observable and steerable), and killing one node's raylet is a node failure Ray must survive.

Every port is fixed from one base (``plan_ports``): Ray's defaults (6379, 8265, 10001, random
worker ports) would collide with other clusters on a shared machine. Each node is started with
``--block`` in a new session, so its process tree is ours alone; ``down`` ends those trees and
never runs ``ray stop`` (which would end every Ray cluster of this user).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from flows.engine.cluster import _alive, _kill_tree, _ray_cli, ray_auth_env

NODE_START_TIMEOUT_S = 180.0
# Per-node fixed ports, in the order plan_ports hands them out.
_NODE_PORTS = ("node_manager", "object_manager", "agent_listen", "agent_grpc", "runtime_env_agent", "metrics")
_HEAD_PORTS = ("gcs", "dashboard", "client_server")


@dataclass
class NodePlan:
    name: str  # "head", "node1", ...; the node's custom resource is llmflow_<name>
    ports: dict[str, int]
    min_worker_port: int
    max_worker_port: int
    pid: int | None = None
    log: str | None = None

    @property
    def resource(self) -> str:
        return f"llmflow_{self.name}"


@dataclass
class ClusterState:
    workdir: str
    temp_root: str
    base_port: int
    nodes: list[NodePlan] = field(default_factory=list)
    num_cpus_per_node: int = 1
    object_store_mb: int = 150

    @property
    def head(self) -> NodePlan:
        return self.nodes[0]

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.head.ports['gcs']}"

    @property
    def dashboard_url(self) -> str:
        """The Ray Jobs API (``RAY_ADDRESS`` for ``llmflow submit``)."""
        return f"http://127.0.0.1:{self.head.ports['dashboard']}"

    def node(self, name: str) -> NodePlan:
        return next(n for n in self.nodes if n.name == name)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ClusterState:
        raw = json.loads(text)
        return cls(**{**raw, "nodes": [NodePlan(**n) for n in raw["nodes"]]})


def plan_ports(base_port: int, num_workers: int, port_span: int = 45) -> list[NodePlan]:
    """Every port each node binds, all inside [base_port, base_port + port_span).

    The head gets 3 + 6 fixed ports, each worker node 6; what is left is split into worker-port
    ranges (one port per Ray worker process), the head's twice as large (job driver, trainers).
    """
    fixed = len(_HEAD_PORTS) + len(_NODE_PORTS) * (1 + num_workers)
    spare = port_span - fixed
    per_worker_node = spare // (num_workers + 2)
    if per_worker_node < 4:
        raise ValueError(f"port_span={port_span} leaves {spare} worker ports for {num_workers + 1} nodes; each "
                         "node needs at least 4: raise port_span or lower num_workers")
    nxt = iter(range(base_port, base_port + port_span))
    nodes = [NodePlan("head", {k: next(nxt) for k in (*_HEAD_PORTS, *_NODE_PORTS)}, 0, 0)]
    nodes += [NodePlan(f"node{i}", {k: next(nxt) for k in _NODE_PORTS}, 0, 0) for i in range(1, num_workers + 1)]
    first = next(nxt)
    head_span = spare - per_worker_node * num_workers
    nodes[0].min_worker_port, nodes[0].max_worker_port = first, first + head_span - 1
    first += head_span
    for n in nodes[1:]:
        n.min_worker_port, n.max_worker_port = first, first + per_worker_node - 1
        first += per_worker_node
    assert first <= base_port + port_span, "port plan overflows its span"
    return nodes


def state_file(workdir: Path) -> Path:
    return Path(workdir) / ".llmflow" / "cluster.json"


def temp_root(workdir: Path) -> Path:
    # Ray's Unix sockets live under the temp dir (path limit ~107 bytes): short, and one per project.
    digest = hashlib.sha1(str(Path(workdir).resolve()).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"llmflow-cluster-{digest}"


def read_state(workdir: Path) -> ClusterState | None:
    f = state_file(workdir)
    return ClusterState.from_json(f.read_text()) if f.exists() else None


def node_env(workdir: Path) -> dict[str, str]:
    """The environment of every node: the project's Ray auth, and this venv's bin first on PATH so a
    job's entrypoint ``llmflow run`` is this installation's (what the cluster image is on Kubernetes)."""
    env = {**os.environ, **ray_auth_env(workdir)}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def _start_cmd(plan: NodePlan, state: ClusterState, num_cpus: int, object_store_mb: int) -> list[str]:
    p = plan.ports
    cmd = [_ray_cli(), "start", "--block", "--node-ip-address=127.0.0.1", f"--num-cpus={num_cpus}",
           "--num-gpus=0", f"--resources={json.dumps({plan.resource: 1})}",
           f"--object-store-memory={object_store_mb * 2**20}", "--disable-usage-stats",
           f"--temp-dir={Path(state.temp_root) / plan.name}",
           f"--node-manager-port={p['node_manager']}", f"--object-manager-port={p['object_manager']}",
           f"--dashboard-agent-listen-port={p['agent_listen']}", f"--dashboard-agent-grpc-port={p['agent_grpc']}",
           f"--runtime-env-agent-port={p['runtime_env_agent']}", f"--metrics-export-port={p['metrics']}",
           f"--min-worker-port={plan.min_worker_port}", f"--max-worker-port={plan.max_worker_port}"]
    if plan.name == "head":
        cmd += ["--head", f"--port={p['gcs']}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                f"--dashboard-port={p['dashboard']}", f"--ray-client-server-port={p['client_server']}"]
    else:
        cmd += [f"--address={state.gcs_address}"]
    return cmd


def _start_node(plan: NodePlan, state: ClusterState, env: dict, num_cpus: int, object_store_mb: int) -> None:
    log = Path(state.workdir) / ".llmflow" / f"cluster-{plan.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(_start_cmd(plan, state, num_cpus, object_store_mb), stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=state.workdir)
    plan.pid, plan.log = proc.pid, str(log)
    state_file(Path(state.workdir)).write_text(state.to_json())  # saved at once: `down` finds a half-up cluster
    deadline = time.monotonic() + NODE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"`ray start` of {plan.name} exited with {proc.returncode}; its log ({log}):\n"
                               f"{log.read_text()[-3000:]}")
        if "Ray runtime started" in log.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise RuntimeError(f"node {plan.name} did not start within {NODE_START_TIMEOUT_S:.0f} s; see {log}")


def up(workdir: Path, *, num_workers: int = 2, num_cpus_per_node: int = 1, object_store_mb: int = 150,
       base_port: int = 18750, port_span: int = 45) -> ClusterState:
    """Start a head and ``num_workers`` worker nodes (or return the running cluster of this workdir).

    ``port_span`` 45 (the tests' range) leaves each worker node 6 worker processes: enough for the tests'
    recipes, not for the e2e flow, whose Ray Data, Ray Train, vLLM and Serve workers ran out of ports
    ("No available ports ... --min-worker-port") on the 3-node cluster; `llmflow cluster up` asks for more."""
    workdir = Path(workdir).resolve()
    running = read_state(workdir)
    if running is not None:
        if all(n.pid and _alive(n.pid) for n in running.nodes):
            return running
        down(workdir)  # a half-dead cluster (a node killed, a reboot): clean it before starting another
    state = ClusterState(str(workdir), str(temp_root(workdir)), base_port, plan_ports(base_port, num_workers, port_span),
                         num_cpus_per_node, object_store_mb)
    env = node_env(workdir)
    try:
        for plan in state.nodes:
            _start_node(plan, state, env, num_cpus_per_node, object_store_mb)
    except BaseException:
        down(workdir)
        raise
    return state


def restart_node(workdir: Path, name: str) -> ClusterState:
    """Start worker node ``name`` again after it died (a fault test killed it), on its old ports."""
    state = read_state(Path(workdir).resolve())
    if state is None:
        raise RuntimeError(f"no local cluster is up in {workdir}: run `llmflow cluster up` first")
    plan = state.node(name)
    if plan.name == "head":
        raise ValueError("the head holds the cluster's state (GCS): restart the whole cluster instead")
    if plan.pid and _alive(plan.pid):
        _kill_tree(plan.pid, grace_s=5.0)  # its `ray start` may outlive a killed raylet for a moment
    _start_node(plan, state, node_env(Path(state.workdir)), state.num_cpus_per_node, state.object_store_mb)
    return state


def down(workdir: Path) -> bool:
    """End every process of this workdir's cluster (worker nodes first); False if none was up."""
    state = read_state(Path(workdir))
    if state is None:
        return False
    for plan in reversed(state.nodes):
        if plan.pid and _alive(plan.pid):
            _kill_tree(plan.pid, grace_s=5.0)
    state_file(Path(workdir)).unlink(missing_ok=True)
    return True


def node_processes(plan: NodePlan, name: str = "raylet") -> list[int]:
    """Pids of one node's processes whose name starts with ``name`` (its raylet, for fault tests)."""
    import psutil

    try:
        children = psutil.Process(plan.pid).children(recursive=True)
    except (psutil.NoSuchProcess, TypeError, ValueError):  # the node is gone (or never started)
        return []
    out = []
    for p in children:
        try:
            if p.name().startswith(name):
                out.append(p.pid)
        except psutil.NoSuchProcess:
            pass
    return out
