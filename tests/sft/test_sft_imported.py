"""sft.lora on imported models (Llama, Mistral, Qwen2-MoE here; Qwen2 in tests/serve/test_byom_chain.py, which takes
it on to serving), with LoRA target modules chosen per architecture or set in the recipe; the import's MLflow
record through the flow engine."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ARCHS = ["llama", "mistral", "qwen2_moe"]
# CI trains the MoE (the architecture least like our own Llama); the others join in the slow tier (~35 s each).
ARCH_PARAMS = [pytest.param(a, marks=[] if a == "qwen2_moe" else [pytest.mark.slow]) for a in ARCHS]


@pytest.fixture(scope="module")
def imported(tmp_path_factory, hf_model_dirs) -> dict[str, Path]:
    from components.models.import_config import ImportConfig
    from components.models.steps import run_import
    from flows.engine.context import StepContext

    out = {}
    for arch in ARCHS:
        out[arch] = tmp_path_factory.mktemp(f"imported_{arch}")
        run_import(StepContext.for_test(out[arch]), ImportConfig(source=str(hf_model_dirs[arch])))
    return out


def _sft(out: Path, model: Path, data: Path, **lora):
    from components.sft.config import LoRASettings, SFTConfig
    from components.sft.steps import run_lora
    from flows.engine.context import StepContext

    cfg = SFTConfig(num_steps=8, batch_size=4, learning_rate=1e-2, max_seq_len=128, num_eval_examples=8,
                    lora=LoRASettings(rank=8, alpha=16, **lora))
    return run_lora(StepContext.for_test(out, {"model": model, "data": data}), cfg)


@pytest.mark.parametrize("arch", ARCH_PARAMS)
def test_sft_runs_on_each_imported_architecture(tmp_path, ray_local, imported, sft_data_dir, arch):
    from components.models.architectures import SUPPORTED

    summary = _sft(tmp_path, imported[arch], sft_data_dir)
    adapter = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    architecture = json.loads((imported[arch] / "import.json").read_text())["architecture"]
    assert sorted(adapter["target_modules"]) == sorted(SUPPORTED[architecture].lora_targets)
    # A random-init base: 8 steps of LoRA must at least lower the held-out response loss.
    assert summary["eval_response_loss"] < summary["eval_response_loss_before"], summary


def test_the_import_is_recorded_in_mlflow(tmp_path, monkeypatch, ray_local, hf_model_dirs):
    from rich.console import Console

    from flows.engine.runner import FlowRunner
    from flows.recipe import parse_recipe

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    recipe = {"name": "byom_import", "steps": {"base": {"uses": "models.import",
                                                        "config": {"source": str(hf_model_dirs["qwen2_moe"])}}}}
    result = FlowRunner(parse_recipe(recipe), workdir=tmp_path, console=Console(quiet=True)).run()
    assert result.ok
    from components.tracking.mlflow_tracking import search_runs

    run = next(r for r in search_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "llmflow")
               if r.data.tags.get("llmflow.step") == "base")
    record = json.loads((Path(result.outcomes["base"].uri) / "import.json").read_text())
    assert run.data.tags["model.architecture"] == "Qwen2MoeForCausalLM"
    assert run.data.tags["model.license"] == "apache-2.0" and run.data.tags["model.dtype"] == "F32"
    assert run.data.tags["model.source_revision"] == record["source_revision"]
    assert run.data.metrics["num_params"] == record["num_params"] > 0
