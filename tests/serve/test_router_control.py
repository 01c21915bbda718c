"""The router's live routing state file (serve.router.control): deploy, switch, rollback, a replica's watcher."""
from __future__ import annotations

import json

import pytest

from serve.router import control
from serve.router.control import ControlWatcher, RoutingState


def test_switch_and_rollback_walk_the_history(tmp_path):
    path = tmp_path / "router_control.json"
    control.deploy(path, RoutingState(model="sft", model_version="rag v1", reason="deploy"))
    control.switch(path, "shadow cand-1", arms={"mode": "shadow", "candidate_share": 1.0, "candidate_model": "cand-1"})
    now = control.switch(path, "promote cand-1", model="cand-1", model_version="rag v2", arms={"mode": "off"})
    assert (now.model, now.model_version, now.arms.mode) == ("cand-1", "rag v2", "off")
    back = control.rollback(path)
    assert (back.model, back.arms.mode, back.arms.candidate_model) == ("sft", "shadow", "cand-1")
    assert back.reason.startswith("rollback of: promote cand-1")
    back = control.rollback(path)
    assert (back.model, back.model_version, back.arms.mode) == ("sft", "rag v1", "off")
    with pytest.raises(ValueError, match="nothing to roll back to"):
        control.rollback(path)


def test_a_bad_switch_is_refused_before_any_replica_reads_it(tmp_path):
    path = tmp_path / "c.json"
    with pytest.raises(FileNotFoundError, match="no routing state yet"):
        control.switch(path, "x", model="m")
    control.deploy(path, RoutingState(model="base"))
    with pytest.raises(ValueError, match="mode"):
        control.switch(path, "x", arms={"mode": "canary", "candidate_model": "c"})
    assert control.current(path).model == "base" and json.loads(path.read_text())["history"] == []


def test_redeploy_starts_from_its_config_and_keeps_the_old_state_as_history(tmp_path):
    path = tmp_path / "c.json"
    control.deploy(path, RoutingState(model="sft"))
    control.switch(path, "promote", model="cand-1")
    state = control.deploy(path, RoutingState(model="sft"))  # the new engine has no cand-1
    assert state.model == "sft" and control.rollback(path).model == "cand-1"


def test_watcher_sees_each_switch_once(tmp_path):
    path = tmp_path / "c.json"
    watcher = ControlWatcher(path, poll_s=0.0)
    assert watcher.poll() is None  # no file: the replica keeps its config's routing
    control.deploy(path, RoutingState(model="sft"))
    assert watcher.poll().model == "sft" and watcher.poll() is None
    control.switch(path, "promote", model="cand-1")
    assert watcher.poll().model == "cand-1"


def test_rollback_is_one_command(tmp_path, capsys):
    path = tmp_path / "c.json"
    control.deploy(path, RoutingState(model="sft"))
    control.switch(path, "promote", model="cand-1")
    assert control.main(["rollback", str(path)]) == 0
    assert "now serves 'sft'" in capsys.readouterr().out and control.current(path).model == "sft"
    assert control.main(["bogus"]) == 2
