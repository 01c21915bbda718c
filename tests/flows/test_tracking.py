"""The engine's tracker seam: a step logs through the logger its tracker made, spools what the
tracker missed, and leaves summary links in its record; the runner replays the spool."""
from __future__ import annotations

import json
import pickle

from rich.console import Console

from flows.engine.context import SPOOL_FILE, StepContext
from flows.engine.runner import FlowResult, StepOutcome, replay_spool
from flows.engine.tracking import NullTracker, load_tracker


class RecordingLogger:
    def __init__(self, fail: bool = False):
        self.fail, self.metrics, self.tags = fail, [], {}

    def log_metrics(self, metrics, step=None, ts_ms=None):
        if self.fail:
            raise ConnectionError("tracker down")
        self.metrics.append((metrics, step))

    def log_artifact(self, path, artifact_path=None):
        pass

    def set_tags(self, tags):
        self.tags.update(tags)


class RecordingTracker(NullTracker):
    def __init__(self):
        self.logged = []

    def log_metrics(self, run_id, metrics, step=None, ts_ms=None):
        self.logged.append((run_id, metrics, step, ts_ms))


def test_metrics_reach_the_logger_and_the_artifact(tmp_path):
    logger = RecordingLogger()
    ctx = StepContext(name="s", output=tmp_path, run_id="r1", logger=pickle.loads(pickle.dumps(logger)))
    ctx.log_metrics({"loss": 1.5}, step=3)
    ctx.set_tags({"k": 1})
    assert ctx.logger.metrics == [({"loss": 1.5}, 3)] and ctx.logger.tags == {"k": "1"}
    assert json.loads((tmp_path / "_metrics.jsonl").read_text())["metrics"] == {"loss": 1.5}
    assert not (tmp_path / SPOOL_FILE).exists()


def test_a_lost_tracker_spools_and_the_runner_replays(tmp_path):
    ctx = StepContext(name="s", output=tmp_path, run_id="r1", logger=RecordingLogger(fail=True))
    ctx.log_metrics({"loss": 1.0}, step=0)
    ctx.log_metrics({"loss": 0.5}, step=1)
    tracker = RecordingTracker()
    assert replay_spool(tracker, "r1", tmp_path / SPOOL_FILE) == 2
    assert [(r, m, s) for r, m, s, _ in tracker.logged] == [("r1", {"loss": 1.0}, 0), ("r1", {"loss": 0.5}, 1)]
    assert not (tmp_path / SPOOL_FILE).exists()


def test_without_a_logger_only_the_artifact_gets_metrics(tmp_path):
    ctx = StepContext.for_test(tmp_path)
    ctx.log_metrics({"x": 1})
    ctx.set_tags({"a": "b"})
    assert (tmp_path / "_metrics.jsonl").exists() and not (tmp_path / SPOOL_FILE).exists()


def test_null_tracker_starts_no_runs():
    t = NullTracker()
    assert t.start_flow("f", {}) is None and t.start_step("p", "s", {}, {}) is None


def test_load_tracker_names_the_expected_form(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="package.module:factory"):
        load_tracker("no_colon", None, "e", tmp_path)
    t = load_tracker("tests.flows.test_tracking:_factory", "uri", "exp", tmp_path)
    assert t.uri == ("uri", "exp")


def _factory(uri, experiment, workdir):
    t = NullTracker()
    t.uri = (uri, experiment)
    return t


def test_cli_prints_the_links_steps_left(monkeypatch, tmp_path):
    from flows import cli

    console = Console(record=True, width=300)
    monkeypatch.setattr(cli, "console", console)
    result = FlowResult("f", None, {
        "serve": StepOutcome("serve", "cached", uri=str(tmp_path),
                             links={"serving": "serving at http://x/v1 (OpenAI-compatible)"}),
        "gone": StepOutcome("gone", "failed", links={"serving": "never shown"}),
    }, 1.0)
    cli._summary(result)
    text = console.export_text()
    assert "serve: serving at http://x/v1 (OpenAI-compatible)" in text and "never shown" not in text
