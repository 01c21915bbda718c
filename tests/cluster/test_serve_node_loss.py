"""Serve on the 3-node cluster loses the node of its replica: requests must succeed again, within
RECOVERY_LIMIT_S, from a replica Serve started on a surviving node.

The replica is a one-line deployment that answers with its node id (the point is Serve's rescheduling
across nodes, not the engine; the LLM app's replicas are Serve replicas like this one). The head's
CPU is held by a placeholder actor so the replica lands on a worker node: the head holds the
cluster's state (GCS) and losing it is not a node failure Ray survives without an external store.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from flows.engine import local_cluster
from tests.cluster.test_multinode import _nodes, cluster_env

pytestmark = pytest.mark.integration
SERVE_PORT = 18797
RECOVERY_LIMIT_S = 90.0

DEPLOY = """
import sys, ray
from ray import serve
ray.init(address=sys.argv[1], log_to_driver=False)

@ray.remote(num_cpus=1, resources={"llmflow_head": 1})
class HoldHead:
    def ping(self):
        return 1

hold = HoldHead.options(name="llmflow-hold-head", lifetime="detached", get_if_exists=True).remote()
ray.get(hold.ping.remote())
serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": int(sys.argv[2])})

@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 1}, health_check_period_s=1,
                  health_check_timeout_s=3)
class Where:
    def __call__(self, request):
        return ray.get_runtime_context().get_node_id()

serve.run(Where.bind(), name="where", route_prefix="/where")
print("deployed", flush=True)
"""


def _where(timeout_s: float = 3.0) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{SERVE_PORT}/where", timeout=timeout_s) as r:
            return r.read().decode().strip().strip('"') if r.status == 200 else None
    except OSError:
        return None


def test_serve_replica_comes_back_after_its_node_is_killed(multinode_cluster):
    state = multinode_cluster
    for plan in state.nodes[1:]:  # a node an earlier test killed comes back first
        if not plan.pid or not local_cluster.node_processes(plan, "raylet"):
            local_cluster.restart_node(state.workdir, plan.name)
    state = local_cluster.read_state(state.workdir)
    env = cluster_env(state)
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", DEPLOY, state.gcs_address, str(SERVE_PORT)], env=env, text=True,
                             capture_output=True, timeout=240, check=False)
        # Once in CI (after the node-kill tests restarted nodes) Serve's controller killed the head's
        # proxy before it started and serve.start failed; starting Serve again is the user's remedy too.
        if "deployed" in out.stdout or "ProxyActor" not in out.stderr:
            break
        time.sleep(5)
    assert "deployed" in out.stdout, out.stdout[-2000:] + out.stderr[-3000:]
    names = _nodes(state, env)
    before = _where()
    assert names.get(before) in ("node1", "node2"), (before, names)
    victim = state.node(names[before])
    (raylet,) = local_cluster.node_processes(victim, "raylet")
    killed_at = time.time()
    os.kill(raylet, signal.SIGKILL)
    after = None
    while time.time() - killed_at < RECOVERY_LIMIT_S + 30:
        after = _where()
        if after is not None and after != before:
            break
        time.sleep(0.2)
    recovered_s = time.time() - killed_at
    print(f"serve: replica on {victim.name} killed; answered from {names.get(after)} after {recovered_s:.1f} s")
    assert after is not None and after != before and names.get(after) in ("node1", "node2")
    assert recovered_s < RECOVERY_LIMIT_S
    assert all(_where() == after for _ in range(5))  # and keeps answering
