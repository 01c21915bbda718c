"""The `train.pretrain` step: drive Ray Train's TorchTrainer over ``loop.train_loop_per_worker``.

The step itself holds no CPU (num_cpus=0 in its kind) so the workers can have them.
On a local root, workers write checkpoints, metrics and the final model straight into the step's
artifact (the driver's temp dir: every worker sees it on one machine). On an object-store root the
cluster shares no disk: checkpoints go to the step's scratch folder in the bucket, the workers write
into a folder of their own node and send metrics, summary and model/ to ``<scratch>/outputs``
(components/train/outbox.py), and the driver downloads them into its artifact. After ``fit`` the
driver replays the metrics to MLflow through ``ctx``.
"""
from __future__ import annotations

import json
from pathlib import Path

from components.artifacts import Model, Tokens
from components.train.config import PretrainConfig
from flows.engine.registry import step_kind


def _storage(output_dir: Path, checkpoint_uri: str | None) -> dict:
    """RunConfig's storage: the artifact's temp dir, or an object-store folder (``s3://...``)."""
    if checkpoint_uri is None:
        return {"storage_path": str(Path(output_dir).resolve() / "_ray_train")}
    from components.train.outbox import ray_storage

    return ray_storage(checkpoint_uri)


def build_trainer(config: PretrainConfig, tokens_dir: Path, output_dir: Path, run_name: str = "pretrain",
                  checkpoint_uri: str | None = None, output_uri: str | None = None):
    """The TorchTrainer for ``config`` (split out so benchmarks and tests run the same thing).

    With ``checkpoint_uri`` (an object-store folder) checkpoints are Ray Train's, persisted there
    and restored with ``ray.train.get_checkpoint()`` on whichever nodes the restarted workers get;
    without, they are files in ``output_dir/checkpoints`` (one machine, or a shared mount). With
    ``output_uri`` the workers also send their output files there (``output_dir`` is then node-local)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from components.train import device
    from components.train.loop import train_loop_per_worker

    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"config": config.model_dump(), "tokens_dir": str(tokens_dir),
                           "output_dir": str(output_dir), "ray_checkpoints": checkpoint_uri is not None,
                           "output_uri": output_uri},
        scaling_config=ScalingConfig(num_workers=config.num_workers, use_gpu=device.use_gpu(),
                                     resources_per_worker={"CPU": config.cpus_per_worker}),
        torch_config=TorchConfig(backend=device.distributed_backend()),
        run_config=RunConfig(name=run_name, **_storage(output_dir, checkpoint_uri),
                             checkpoint_config=CheckpointConfig(num_to_keep=config.keep_checkpoints),
                             failure_config=FailureConfig(max_failures=config.max_failures),
                             worker_runtime_env=worker_runtime_env(config.worker_niceness)),
    )


def worker_runtime_env(niceness: int | None) -> dict | None:
    """The training workers' runtime_env: Ray's core worker reads RAY_worker_niceness when its
    process starts, so the setting applies to these actors only, not to the cluster."""
    return None if niceness is None else {"env_vars": {"RAY_worker_niceness": str(niceness)}}


def read_metrics(output_dir: Path) -> dict[int, dict[str, float]]:
    """Per-step metrics from the workers' log; a step re-run after a restart keeps its last record."""
    path = Path(output_dir) / "train_metrics.jsonl"
    by_step: dict[int, dict[str, float]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            by_step[record["step"]] = record["metrics"]
    return dict(sorted(by_step.items()))


def worker_node_tags(output_dir: Path) -> dict[str, str]:
    """``llmflow.train_worker.rank<N>.node_id`` per rank (its last start), and every node any worker used."""
    from components.train.loop import WORKERS_FILE

    path = Path(output_dir) / WORKERS_FILE
    records = [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []
    tags = {f"llmflow.train_worker.rank{r['rank']}.node_id": r["node_id"] for r in records}
    if records:
        tags["llmflow.train_worker.nodes"] = ",".join(sorted({r["node_id"] for r in records}))
    return tags


@step_kind("train.pretrain", inputs=("tokens",), effects=("val_loss",),
           description="Pretrain a Llama/Mixtral preset on packed token shards with Ray Train "
                       "(FSDP2 or DeepSpeed ZeRO), checkpointing and resuming; exports model/ as HF safetensors.",
           num_cpus=0,  # only drives Ray Train; the workers hold the CPUs/GPUs
           resumable=True)  # a re-run after a crash finds checkpoints/ where the failed attempt left them
def run_pretrain(ctx, config: PretrainConfig) -> dict[str, float]:
    from components.train.data import unigram_cross_entropy

    Tokens.of(ctx)  # a wrong input fails here, not inside the workers
    tokens_dir = ctx.input("tokens")
    ctx.set_tags({"strategy": config.strategy, "num_workers": config.num_workers,
                  "zero_stage": config.zero_stage if config.strategy == "deepspeed" else "-"})
    # On an object-store root (a cluster without a shared disk) checkpoints and outputs go there too:
    # rank 0 may run on a node where ctx.output does not exist. Workers get their own folder (beside
    # ctx.output on one machine, its namesake on another node) and the driver reads only the bucket.
    remote = ctx.scratch_uri is not None
    worker_dir = ctx.output.with_name(ctx.output.name + ".worker") if remote else ctx.output
    output_uri = f"{ctx.scratch_uri}/outputs" if remote else None
    # Workers read the tokens from the store (their node's cache) on a remote root, not the driver's copy.
    worker_tokens = ctx.input_uri("tokens") if remote else tokens_dir
    build_trainer(config, worker_tokens, worker_dir, run_name=f"pretrain-{ctx.name}", checkpoint_uri=ctx.scratch_uri,
                  output_uri=output_uri).fit()
    if remote:
        from components.train.outbox import collect

        collect(output_uri, ctx.output)
    ctx.set_tags(worker_node_tags(ctx.output))
    for step, metrics in read_metrics(ctx.output).items():
        ctx.log_metrics(metrics, step=step)
    summary_path = ctx.output / "train_summary.json"
    if not (ctx.output / Model.SUBDIR / Model.MARKER).is_file() or not summary_path.exists():
        raise RuntimeError(f"training finished but wrote no model/summary to {ctx.output}; see the worker logs")
    summary = json.loads(summary_path.read_text())
    headline = {"val_loss": summary.get("val_loss", float("nan"))}
    headline.update({k: float(v) for k, v in summary.items() if isinstance(v, (int, float)) and k != "val_loss"})
    headline["unigram_val_loss"] = unigram_cross_entropy(tokens_dir)
    ctx.report_effect("val_loss", headline["val_loss"], headline["unigram_val_loss"], higher_is_better=False,
                      min_margin=config.min_gain_vs_unigram, baseline_name="unigram")
    return headline
