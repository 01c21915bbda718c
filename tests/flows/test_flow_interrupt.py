"""A flow killed mid-step (SIGTERM, as a job scheduler or `kill` sends it) leaves no MLflow run
RUNNING: the parent and the step that was running are KILLED, with the error as a tag."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from components.tracking.mlflow_tracking import search_runs

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DRIVER = """
import sys
from tests.flows.kinds_for_tests import ensure_registered
ensure_registered()
from flows.cli import app
sys.argv = ["llmflow", "run", sys.argv[1], "--workdir", sys.argv[2]]
app()
"""


def test_sigterm_mid_step_marks_the_mlflow_runs_killed(diamond, tmp_path):
    diamond["steps"]["join"]["config"] = {"sleep_s": 120}
    recipe_file = tmp_path / "diamond.yaml"
    recipe_file.write_text(yaml.safe_dump(diamond))
    workdir = tmp_path / "runs" / "work"  # not there yet: `llmflow run` makes it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "MLFLOW_TRACKING_URI"))}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(recipe_file), str(workdir)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    signal_file = workdir / ".llmflow" / "artifacts" / "signal"
    deadline = time.time() + 180
    while not signal_file.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.3)
    assert signal_file.exists(), f"join never started: {proc.communicate(timeout=30)[0][-3000:]}"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out[-3000:]
    assert "marked KILLED" in out

    runs = search_runs(f"sqlite:///{workdir / 'mlflow.db'}", "llmflow")
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    steps = {r.data.tags["llmflow.step"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert parent.info.status == "KILLED"
    assert "SIGTERM" in parent.data.tags["llmflow.error"]
    assert steps["join"].info.status == "KILLED" and "SIGTERM" in steps["join"].data.tags["llmflow.error"]
    assert {steps[n].info.status for n in ("a", "b", "left", "right")} == {"FINISHED"}
    assert not [r for r in runs if r.info.status == "RUNNING"]
