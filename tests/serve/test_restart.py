"""Integration: a killed replica is replaced by Serve, its engine process goes with it, service resumes."""
from __future__ import annotations

import time

import openai
import pytest

from tests.serve.llm_app_settings import APP_NAME

pytestmark = pytest.mark.integration


def _replica_actor_names() -> list[str]:
    import ray

    prefix = f"SERVE_REPLICA::{APP_NAME}#LLMDeployment#"
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix)]


def _engine_pids_of_replica() -> set[int]:
    import psutil

    pids = set()
    for p in psutil.process_iter(["cmdline"]):
        if any(f"ServeReplica:{APP_NAME}:LLMDeployment" in part for part in (p.info["cmdline"] or [])):
            pids |= {c.pid for c in p.children(recursive=True)}
    return pids


@pytest.mark.slow  # ~75 s; CI kills a Serve replica with its node in tests/cluster/test_serve_node_loss.py
def test_killed_replica_restarts_and_serves(llm_app, client):
    import psutil
    import ray

    [old] = _replica_actor_names()
    engine_pids = _engine_pids_of_replica()
    assert engine_pids, "expected the replica to own an engine-core process"
    ray.kill(ray.get_actor(old, namespace="serve"), no_restart=True)

    deadline, last = time.monotonic() + 300, None
    while time.monotonic() < deadline:
        names = _replica_actor_names()
        if names and names != [old]:
            try:
                r = client.completions.create(model="tiny", prompt="back?", max_tokens=4)
                if r.usage.completion_tokens == 4:
                    break
            except openai.APIError as e:  # the new replica may still be loading the engine
                last = e
        time.sleep(2)
    else:
        pytest.fail(f"no healthy replacement replica within 300s (replicas={_replica_actor_names()}, last={last!r})")
    assert _replica_actor_names() != [old]
    time.sleep(2)
    leftover = [p for p in engine_pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not leftover, f"engine processes of the killed replica still running: {leftover}"
