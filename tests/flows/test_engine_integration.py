"""The engine on a real local Ray with a real MLflow store: cache, resume, force, kill, lineage."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from components.tracking.mlflow_tracking import search_runs
from flows.engine.runner import FlowRunner, step_status
from flows.recipe import parse_recipe

pytestmark = pytest.mark.integration


@pytest.fixture
def workdir(tmp_path, monkeypatch, ray_local):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def _calls(workdir: Path) -> list[str]:
    f = workdir / ".llmflow" / "artifacts" / "calls.log"
    lines = f.read_text().split() if f.exists() else []
    f.unlink(missing_ok=True)
    return sorted(lines)


def _run(recipe_dict, workdir, force=(), overrides=()):
    runner = FlowRunner(parse_recipe(recipe_dict, overrides=list(overrides)), workdir=workdir,
                        console=Console(quiet=True))
    return runner, runner.run(force=list(force))


def test_second_run_recomputes_nothing_and_lineage_is_in_mlflow(diamond, workdir):
    _, first = _run(diamond, workdir)
    assert first.ok and sorted(first.recomputed()) == ["a", "b", "join", "left", "right"]
    assert _calls(workdir) == ["a", "b", "join", "left", "right"]
    assert (Path(first.outcomes["join"].uri) / "value.json").read_text() == '{"value": 1111}'
    _, second = _run(diamond, workdir)
    assert second.ok and second.recomputed() == [] and _calls(workdir) == []
    assert {o.status for o in second.outcomes.values()} == {"cached"}

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    runs = search_runs(uri, "llmflow")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == first.run_id]
    assert len(parents) == 2 and len(children) == 5
    join = next(r for r in children if r.data.tags["llmflow.step"] == "join")
    assert join.data.tags["llmflow.input.a"].startswith("left@")
    assert join.data.tags["llmflow.input.b"].startswith("right@")
    assert join.data.tags["llmflow.cache"] == "miss"
    assert join.data.params["offset"] == "0"
    assert join.data.metrics["value"] == 1111
    cached = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == second.run_id]
    assert {r.data.tags["llmflow.cache"] for r in cached} == {"hit"}


def test_failed_step_resumes_without_recomputing_upstream(diamond, workdir):
    flag = workdir / "fail-once"
    flag.write_text("x")
    diamond["steps"]["join"]["config"]["fail_flag"] = str(flag)
    runner, first = _run(diamond, workdir)
    assert not first.ok and first.outcomes["join"].status == "failed"
    assert "planned failure" in first.outcomes["join"].error
    assert {r["step"]: r["status"] for r in step_status(runner)}["join"] == "failed"
    _calls(workdir)
    _, second = _run(diamond, workdir)
    assert second.ok and second.recomputed() == ["join"] and _calls(workdir) == ["join"]


def test_force_recomputes_exactly_the_step_and_its_downstream(diamond, workdir):
    _run(diamond, workdir)
    _calls(workdir)
    _, forced = _run(diamond, workdir, force=["left"])
    assert sorted(forced.recomputed()) == ["join", "left"] and _calls(workdir) == ["join", "left"]
    with pytest.raises(ValueError, match="unknown step"):
        _run(diamond, workdir, force=["nope"])


def test_config_change_recomputes_only_affected_steps(diamond, workdir):
    _run(diamond, workdir)
    _calls(workdir)
    _, changed = _run(diamond, workdir, overrides=["steps.right.config.offset=2000"])
    assert sorted(changed.recomputed()) == ["join", "right"]
    assert (Path(changed.outcomes["join"].uri) / "value.json").read_text() == '{"value": 2111}'


def test_step_killed_mid_write_leaves_no_complete_artifact(diamond, workdir):
    signal_file = workdir / ".llmflow" / "artifacts" / "signal"
    diamond["steps"]["join"]["config"]["sleep_s"] = 60
    runner = FlowRunner(parse_recipe(diamond), workdir=workdir, console=Console(quiet=True))
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", runner.run()))
    t.start()
    deadline = time.time() + 60
    while not signal_file.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert signal_file.exists(), "join never started"
    # The worker running `join` is the only process with a half-written temp dir: kill it hard.
    tmp_dirs = list((Path(runner.store.root) / ".tmp").glob("join-*"))
    assert tmp_dirs and (tmp_dirs[0] / "partial.txt").exists()
    os.kill(int(signal_file.read_text()), signal.SIGKILL)
    t.join(60)
    assert result["r"].outcomes["join"].status == "failed"
    join = runner.plan["join"]
    assert not runner.store.is_complete("join", join.address)
    assert not Path(join.uri).exists()
    diamond["steps"]["join"]["config"]["sleep_s"] = 0
    _, again = _run(diamond, workdir)
    assert again.ok and again.recomputed() == ["join"]
