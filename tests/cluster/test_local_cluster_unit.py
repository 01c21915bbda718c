"""The local cluster's port plan and the job a submit builds (no Ray started here)."""
from __future__ import annotations

from pathlib import Path

import pytest

from flows.engine import jobs
from flows.engine.local_cluster import plan_ports

REPO = Path(__file__).resolve().parents[2]


def _all_ports(nodes):
    out = []
    for n in nodes:
        out += list(n.ports.values()) + list(range(n.min_worker_port, n.max_worker_port + 1))
    return out


@pytest.mark.parametrize("num_workers", [1, 2])
def test_every_port_is_fixed_distinct_and_inside_the_span(num_workers):
    nodes = plan_ports(18750, num_workers)
    ports = _all_ports(nodes)
    assert len(ports) == len(set(ports))
    assert min(ports) >= 18750 and max(ports) < 18750 + 45
    assert [n.name for n in nodes] == ["head"] + [f"node{i}" for i in range(1, num_workers + 1)]
    assert all(n.max_worker_port - n.min_worker_port + 1 >= 4 for n in nodes)
    assert len({n.resource for n in nodes}) == len(nodes)


def test_too_many_nodes_for_the_span_is_a_clear_error():
    with pytest.raises(ValueError, match="port_span"):
        plan_ports(18750, 3)


def test_entrypoint_names_shipped_recipes_and_files_inside_the_working_dir(tmp_path):
    assert jobs.entrypoint("multinode", REPO, ["steps.pretrain.config.num_steps=4"]) == \
        "llmflow run multinode --set steps.pretrain.config.num_steps=4"
    (tmp_path / "my.yaml").write_text("name: x\nsteps: {}\n")
    assert jobs.entrypoint(str(tmp_path / "my.yaml"), tmp_path, []) == "llmflow run my.yaml"
    with pytest.raises(ValueError, match="outside the working dir"):
        jobs.entrypoint(str(tmp_path / "my.yaml"), REPO, [])


def test_runtime_env_ships_the_working_dir_and_overrides_win():
    env = jobs.runtime_env(REPO, REPO / "cluster" / "runtime_env.yaml", {"MLFLOW_TRACKING_URI": "http://127.0.0.1:1"})
    assert env["working_dir"] == str(REPO)
    assert ".venv" in env["excludes"] and ".llmflow" in env["excludes"]
    assert env["env_vars"]["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:1"
    assert env["env_vars"]["HF_HUB_OFFLINE"] == "1"


def test_cli_without_a_cluster_says_how_to_get_one(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    runner = CliRunner()
    status = runner.invoke(app, ["cluster", "status", "--workdir", str(tmp_path)])
    assert status.exit_code == 1 and "no local cluster" in status.output
    submit = runner.invoke(app, ["submit", "multinode", "--workdir", str(tmp_path)])
    assert submit.exit_code == 2 and "llmflow cluster up" in submit.output
    bad_env = runner.invoke(app, ["submit", "multinode", "--env", "NOVALUE", "--address", "http://127.0.0.1:1"])
    assert bad_env.exit_code == 2 and "KEY=VALUE" in bad_env.output
    down = runner.invoke(app, ["cluster", "down", "--workdir", str(tmp_path)])
    assert down.exit_code == 0 and "no local cluster" in down.output
