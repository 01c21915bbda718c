"""Config of the `train.pretrain` step. Imports nothing heavy: recipes validate without torch."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config import Config
from components.models.config import ModelConfig


class PretrainConfig(Config):
    RENAMED = {"lr": "learning_rate", "max_steps": "num_steps"}

    model: ModelConfig = Field(default_factory=ModelConfig,
                               description="Model shape: a preset or a depth, dense Llama or Mixtral-style MoE.")
    strategy: Literal["none", "fsdp2", "deepspeed"] = Field(
        "fsdp2", description="How parameters are distributed: none (plain model, DDP when >1 worker), "
                             "fsdp2 (torch fully_shard per decoder layer) or deepspeed (ZeRO, see zero_stage).")
    zero_stage: Literal[1, 2, 3] = Field(2, description="DeepSpeed ZeRO stage (only with strategy: deepspeed).")
    num_workers: int = Field(2, ge=1, description="Ray Train workers (one per GPU on a GPU cluster).")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs each worker reserves; on CPU also its torch threads.")
    micro_batch_size: int = Field(4, ge=1, description="Sequences per worker per forward pass.")
    grad_accum_steps: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer step.")
    num_steps: int = Field(40, ge=1, description="Optimizer steps to train for.")
    learning_rate: float = Field(3e-3, gt=0, description="Peak learning rate (AdamW).")
    min_lr_ratio: float = Field(0.1, ge=0, le=1,
                                description="Cosine decays to learning_rate·min_lr_ratio at num_steps.")
    warmup_steps: int = Field(5, ge=0, description="Linear warmup steps before the cosine decay.")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay.")
    beta1: float = Field(0.9, gt=0, lt=1, description="AdamW beta1.")
    beta2: float = Field(0.95, gt=0, lt=1, description="AdamW beta2.")
    grad_clip: float = Field(1.0, ge=0, description="Clip the global gradient norm to this; 0 disables clipping.")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto = bf16 mixed precision on GPU, fp32 on CPU (chosen in components/train/device.py).")
    activation_checkpointing: bool = Field(False, description="Recompute decoder activations in backward to save memory.")
    compile: bool = Field(False, description="torch.compile each decoder layer (meant for GPU; slow to start on CPU).")
    seed: int = Field(0, description="Seed for the model init and the data order.")
    min_gain_vs_unigram: float = Field(0.25, ge=0, description=(
        "The effect pretraining must show: validation loss (nats/token) below the unigram baseline (train-split "
        "token frequencies scored on the val split) by more than this. Less means the model learned no more than "
        "word frequencies: a warning, or a failed step under the recipe's strict: true."))
    checkpoint_every: int = Field(20, ge=1, description="Save a sharded checkpoint every this many steps "
                                                        "(and at the last step) under checkpoints/.")
    keep_checkpoints: int = Field(2, ge=1, description="How many of the newest checkpoints to keep.")
    eval_every: int = Field(20, ge=1, description="Compute validation loss every this many steps (and at the end).")
    eval_batches: int = Field(4, ge=1, description="Micro-batches per worker used for validation loss.")
    log_every: int = Field(1, ge=1, description="Record training metrics every this many steps.")
    max_failures: int = Field(2, ge=0, description="Ray Train restarts after a worker failure; each resumes "
                                                   "from the latest checkpoint.")
    worker_niceness: int | None = Field(None, ge=-20, le=19, description=(
        "Niceness of the training workers' processes. Ray starts its workers at RAY_worker_niceness (15), below "
        "its own raylet/GCS/agents (0), so on a small CPU machine the loop yields the cores to them: 0 gives "
        "the workers an equal share (benchmarks/train_ray_overhead.py measures both). null = Ray's setting."))
    peak_tflops: float | None = Field(None, gt=0, description="Per-device peak TFLOP/s for MFU; null = the device "
                                                              "module's table (GPUs only; MFU is omitted on CPU).")
    fault_injection_step: int | None = Field(
        None, ge=1, description="Testing aid: the last worker raises once when it reaches this step (a marker "
                                "file in checkpoints/ makes it once), to exercise recovery. Leave null.")

    @model_validator(mode="after")
    def _check(self) -> PretrainConfig:
        problems = []
        if self.warmup_steps >= self.num_steps:
            problems.append(f"warmup_steps={self.warmup_steps} must be < num_steps={self.num_steps}; "
                            "lower warmup_steps")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def global_batch_size(self) -> int:
        """Sequences per optimizer step across all workers."""
        return self.num_workers * self.micro_batch_size * self.grad_accum_steps
