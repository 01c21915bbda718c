"""The local head's lifecycle helpers: the project's own Ray token, and `llmflow stop` ending
exactly the process tree of this project's head (never another Ray of the same user, such as
the test session's cluster). The real head on a fresh HOME is exercised by the e2e fixture."""
import json
import os
import stat
import subprocess
import sys
import time

import pytest

from flows.engine import cluster


@pytest.fixture
def no_user_ray_auth(monkeypatch):
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)


def test_project_token_is_created_once_private_and_outside_home(tmp_path, no_user_ray_auth):
    env = cluster.ray_auth_env(tmp_path)
    token = cluster.token_file(tmp_path)
    assert env == {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    first = token.read_text()
    assert len(first) == 64 and int(first, 16) >= 0
    assert cluster.ray_auth_env(tmp_path) == env and token.read_text() == first  # reused, not rotated


def test_a_users_own_token_or_disabled_auth_is_respected(tmp_path, no_user_ray_auth, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "abc")
    assert cluster.ray_auth_env(tmp_path) == {"RAY_AUTH_MODE": "token"}
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert cluster.ray_auth_env(tmp_path) == {}
    assert not cluster.token_file(tmp_path).exists()


_TREE = """
import subprocess, sys, time
# a child in its own session, as Ray workers are: killing the group alone would miss it
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
print("ready", flush=True)
time.sleep(600)
"""


def _sleeper(new_session: bool) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _TREE], stdout=subprocess.PIPE, text=True,
                            start_new_session=new_session)


def test_stop_ends_the_heads_whole_tree_and_nothing_else(tmp_path, monkeypatch, no_user_ray_auth):
    import psutil

    shutdowns = []
    monkeypatch.setattr(cluster, "_shutdown_serve", lambda address, env: shutdowns.append((address, env)))
    head, bystander = _sleeper(True), _sleeper(True)
    for p in (head, bystander):
        assert p.stdout.readline().strip() == "ready"
    tree = [psutil.Process(head.pid), *psutil.Process(head.pid).children(recursive=True)]
    assert len(tree) == 2
    f = cluster.head_file(tmp_path)
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps({"address": "127.0.0.1:6390", "pid": head.pid}))

    t0 = time.monotonic()
    assert cluster.stop_local_head(tmp_path)
    assert time.monotonic() - t0 < 20
    head.wait(5)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree)
    # Serve is shut down through the head first (so LLM replicas stop their engines), with the project token
    assert shutdowns[0][0] == "127.0.0.1:6390"
    assert shutdowns[0][1]["RAY_AUTH_TOKEN_PATH"] == str(cluster.token_file(tmp_path))
    assert bystander.poll() is None, "another process tree was killed"
    assert not f.exists() and not cluster.stop_local_head(tmp_path)
    for p in [psutil.Process(bystander.pid), *psutil.Process(bystander.pid).children(recursive=True)]:
        p.kill()
    bystander.wait(5)


def test_a_dead_head_is_cleaned_up_without_error(tmp_path, monkeypatch, no_user_ray_auth):
    monkeypatch.setattr(cluster, "_shutdown_serve", lambda *a: pytest.fail("no Serve to shut down"))
    f = cluster.head_file(tmp_path)
    f.parent.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    f.write_text(json.dumps({"address": "127.0.0.1:6390", "pid": dead.pid}))
    assert cluster.stop_local_head(tmp_path)
    assert not f.exists()
    assert os.environ.get("RAY_AUTH_TOKEN_PATH") is None  # stop does not change the caller's environment
