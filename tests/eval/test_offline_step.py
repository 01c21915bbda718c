"""eval.offline end to end: tiny model, eval.jsonl, token shards, real MLflow store, real judge endpoint."""
import json

import pytest

from components.eval.config import GateConfig, JudgeConfig, OfflineEvalConfig
from components.eval.steps import run_offline_eval
from components.tracking import registry
from flows.engine.context import StepContext

pytestmark = pytest.mark.integration


def test_offline_eval_judge_skipped_then_judged(tmp_path, mlflow_uri, tiny_model_dir, eval_data_dir, tokens_dir,
                                                judge_url):
    inputs = {"model": tiny_model_dir, "data": eval_data_dir, "tokens": tokens_dir}
    # A random tiny model scores ~0: floor below that, since this test is about the registry round trip
    # (the floor itself is tested in test_gate_rule.py and through the main job in tests/flows).
    gate = GateConfig(registered_model="tiny-chat", metric="rougeL", floor=-1.0)
    cfg = OfflineEvalConfig(max_questions=4, max_new_tokens=8, max_ppl_blocks=8, gate=gate)
    ctx = StepContext.for_test(tmp_path / "a", inputs)
    metrics = run_offline_eval(ctx, cfg)
    report = json.loads((ctx.output / "report.json").read_text())
    assert report["judge"]["status"] == "skipped" and not any(k.startswith("judge_") for k in metrics)
    assert 1.0 < metrics["perplexity"] < 1e5 and "f1" in metrics and "bleu" in metrics
    assert report["prompt_versions"]["llmflow-system"] == "prompts:/llmflow-system/1"
    rows = [json.loads(x) for x in (ctx.output / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all("prediction" in r for r in rows)
    first = json.loads((ctx.output / "gate.json").read_text())
    assert first["promoted"] and registry.version_by_alias(mlflow_uri, "tiny-chat", "champion")

    judged_cfg = cfg.model_copy(update={"judge": JudgeConfig(base_url=judge_url, model="tiny", constrained_choice=True)})
    from components.tracking.mlflow_tracking import FlowTracker, get_run

    tracker = FlowTracker(mlflow_uri, "eval-test", workdir=tmp_path)
    run_id = tracker.start_step(tracker.start_flow("f", {}), "eval", {}, {})
    ctx2 = StepContext(name="eval", output=tmp_path / "b", inputs=inputs, run_id=run_id, tracking_uri=mlflow_uri,
                       logger=tracker.step_logger(run_id),
                       show_progress=False)
    m2 = run_offline_eval(ctx2, judged_cfg)
    run = get_run(mlflow_uri, run_id)
    assert run.data.tags["eval.judge"] == "ran" and run.data.tags["gate.promoted"] == "False"
    assert run.data.tags["prompt.llmflow-judge-criterion"] == "prompts:/llmflow-judge-criterion/1"
    assert "f1" in run.data.metrics
    from mlflow.tracking import MlflowClient

    logged = {a.path for a in MlflowClient(mlflow_uri).list_artifacts(run_id)}
    assert {"eval_results.json", "gate.json", "report.json"} <= logged
    report2 = json.loads((ctx2.output / "report.json").read_text())
    assert report2["judge"]["status"] == "ran" and 1 <= m2["judge_overall"] <= 5
    assert "pairwise_position_flip_rate" in m2
    assert report2["prompt_versions"]["llmflow-system"] == "prompts:/llmflow-system/1"  # unchanged → not re-registered
    second = json.loads((ctx2.output / "gate.json").read_text())
    # same model, same greedy answers: no gain, so the champion stays
    assert not second["promoted"] and second["champion"]["version"] == first["candidate"]["version"]
