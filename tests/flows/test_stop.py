"""`llmflow stop`: Serve is shut down through the head before `ray stop --force`, so each LLM
replica stops its vLLM engine-core child (a bare `ray stop --force` orphaned them).

Unit test with a recorded subprocess.run: an integration test would run `ray stop --force`,
which stops every Ray process of this user, the test session's cluster included. Checked by
hand on a served e2e stack: one EngineCore process before `llmflow stop`, none after (18 s).
"""
import json
import subprocess

from flows.engine import cluster


def _record_runs(monkeypatch, workdir, shutdown_hangs: bool = False) -> list:
    """A head file as `llmflow run` leaves it, and subprocess.run recording each command."""
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        if shutdown_hangs and "timeout" in kwargs:
            raise subprocess.TimeoutExpired(cmd, kwargs["timeout"])
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(cluster.subprocess, "run", fake_run)
    f = cluster.head_file(workdir)
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps({"address": "127.0.0.1:6390"}))
    return calls


def test_stop_shuts_serve_down_through_the_head_before_ray_stop(tmp_path, monkeypatch):
    calls = _record_runs(monkeypatch, tmp_path)
    f = cluster.head_file(tmp_path)
    assert cluster.stop_local_head(tmp_path)
    assert "serve.shutdown()" in calls[0][2] and calls[0][3] == "127.0.0.1:6390"
    assert calls[1][1:] == ["stop", "--force"]
    assert not f.exists()
    assert not cluster.stop_local_head(tmp_path)  # nothing started here any more


def test_a_wedged_serve_does_not_block_the_stop(tmp_path, monkeypatch):
    calls = _record_runs(monkeypatch, tmp_path, shutdown_hangs=True)
    assert cluster.stop_local_head(tmp_path)
    assert calls[-1][1:] == ["stop", "--force"]
