"""The ``models.import`` step: a Hugging Face model (local directory or hub id) as a model artifact.

Downstream steps (sft.lora, rl.*, distill.draft, eval.offline, serve.deploy) read it exactly as they
read ``train.pretrain``'s: ``<artifact>/model`` is an HF directory with safetensors, the tokenizer and
its chat template. Every check runs before a weight is read or a file is written
(components/models/importer.py); the engine publishes the artifact only when the step returns.
"""
from __future__ import annotations

from pathlib import Path

from components.models.import_config import ImportConfig
from flows.engine.registry import step_kind


@step_kind("models.import", inputs=(),
           description="Import a Hugging Face causal LM (local directory or hub id) after checking architecture, "
                       "safetensors, remote code, tokenizer and chat template; writes model/ as train.pretrain does.")
def run_import(ctx, config: ImportConfig) -> dict[str, float]:
    from components.models import hub
    from components.models.importer import (
        ImportRefused,
        content_revision,
        inspect_model,
        write_model,
    )

    if hub.is_local(config.source):
        model_dir = Path(config.source).expanduser().resolve()
        if config.revision:
            raise ImportRefused(f"models.import: revision={config.revision!r} is for hub ids; {config.source!r} is a "
                                "local directory: drop revision (its content hash is recorded instead)")
        found = inspect_model(model_dir, config)
        revision = content_revision(found)
    else:
        model_dir, revision = hub.fetch_metadata(config.source, config.revision)
        inspect_model(model_dir, config, check_weights=False)  # refuse before downloading any weight
        names = hub.list_weight_files(config.source, revision)
        if names is not None and not any(n.endswith(".safetensors") for n in names) and not config.allow_pickle:
            raise ImportRefused(f"models.import source {config.source!r}: the repository has only pickled weights "
                                f"({', '.join(names[:5]) or 'none'}); set allow_pickle: true to convert them once "
                                "to safetensors")
        found = inspect_model(hub.fetch_weights(config.source, revision, config.allow_pickle), config)
    record = write_model(found, config, ctx.output, revision)
    ctx.set_tags({f"model.{k}": record[k] for k in ("source", "source_revision", "architecture", "dtype", "license",
                                                    "chat_template", "converted_from_pickle", "lora_targets")})
    metrics = {"num_params": float(record["num_params"]), "vocab_size": float(record["vocab_size"] or 0),
               "num_layers": float(found.config.get("num_hidden_layers") or 0)}
    ctx.log_metrics(metrics)
    ctx.log_artifact(ctx.output / "import.json")
    return metrics
