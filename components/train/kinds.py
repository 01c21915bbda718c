"""Step kinds of the training stage (light: no torch/ray imports)."""
from flows.engine.registry import StepKind

KINDS = [
    StepKind(
        name="train.pretrain",
        config="components.train.config:PretrainConfig",
        run="components.train.steps:run_pretrain",
        inputs=("tokens",),
        description="Pretrain a Llama/Mixtral preset on packed token shards with Ray Train "
                    "(FSDP2 or DeepSpeed ZeRO), checkpointing and resuming; exports model/ as HF safetensors.",
        num_cpus=0,  # only drives Ray Train; the workers hold the CPUs/GPUs
        resumable=True,  # a re-run after a crash finds checkpoints/ where the failed attempt left them
    ),
]
