"""Wrap a freshly built model for the chosen strategy: plain/DDP, FSDP2 or DeepSpeed ZeRO.

Returns a ``Wrapped`` whose ``forward_backward`` and ``step`` hide the differences the
training loop would otherwise branch on (who scales the loss for accumulation, who
clips, where gradient sync is switched off).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from components.train.config import PretrainConfig
from components.train.device import DeviceInfo


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    # Norm weights (1-D) are not decayed: decaying them only shrinks the residual scale.
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _adamw(model: torch.nn.Module, config: PretrainConfig, info: DeviceInfo) -> torch.optim.Optimizer:
    return torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.learning_rate,
                             betas=(config.beta1, config.beta2), fused=info.device.type == "cuda")


@dataclass
class Wrapped:
    model: Any                 # what forward is called on (DDP / FSDP module / DeepSpeed engine)
    optimizer: Any             # whose param_groups carry the lr
    strategy: str
    grad_accum_steps: int
    grad_clip: float
    autocast_dtype: torch.dtype | None  # only the plain strategy autocasts; FSDP2 and ZeRO cast themselves
    device: torch.device

    def forward_backward(self, input_ids: torch.Tensor, last_micro: bool) -> torch.Tensor:
        """Loss of one micro-batch (un-scaled, detached), gradients accumulated."""
        if self.strategy == "deepspeed":
            loss = self.model(input_ids=input_ids, labels=input_ids).loss
            self.model.backward(loss)   # DeepSpeed divides by grad_accum_steps itself
            self.model.step()           # a no-op except at the accumulation boundary
            return loss.detach()
        if self.strategy == "fsdp2":
            self.model.set_requires_gradient_sync(last_micro)  # reduce-scatter once per step
            sync = contextlib.nullcontext()
        else:
            sync = self.model.no_sync() if isinstance(self.model, torch.nn.parallel.DistributedDataParallel) \
                and not last_micro else contextlib.nullcontext()
        autocast = torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype \
            else contextlib.nullcontext()
        with sync:
            with autocast:
                loss = self.model(input_ids=input_ids, labels=input_ids).loss
            (loss / self.grad_accum_steps).backward()
        return loss.detach()

    def step(self) -> float:
        """Clip, update, zero grads; returns the global gradient norm before clipping."""
        if self.strategy == "deepspeed":
            norm = self.model.get_global_grad_norm()
            return float(norm) if norm is not None else float("nan")
        max_norm = self.grad_clip if self.grad_clip > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        if hasattr(norm, "full_tensor"):  # FSDP2 parameters are DTensors, so is their norm
            norm = norm.full_tensor()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)


def wrap(model: torch.nn.Module, config: PretrainConfig, info: DeviceInfo) -> Wrapped:
    world = dist.get_world_size() if dist.is_initialized() else 1
    if config.activation_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.to(info.device)
    if config.compile:
        for layer in model.model.layers:  # per block, as torchtitan does: small graphs, shared by all layers
            layer.compile()
    common = {"strategy": config.strategy, "grad_accum_steps": config.grad_accum_steps,
              "grad_clip": config.grad_clip, "device": info.device}

    if config.strategy == "fsdp2":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = MixedPrecisionPolicy(param_dtype=info.dtype, reduce_dtype=torch.float32)
        for layer in model.model.layers:
            fully_shard(layer, mp_policy=mp)
        fully_shard(model, mp_policy=mp)
        return Wrapped(model=model, optimizer=_adamw(model, config, info), autocast_dtype=None, **common)

    if config.strategy == "deepspeed":
        import deepspeed

        from components.train.device import prepare_deepspeed

        prepare_deepspeed()
        ds_config = {
            "train_micro_batch_size_per_gpu": config.micro_batch_size,
            "gradient_accumulation_steps": config.grad_accum_steps,
            "train_batch_size": config.micro_batch_size * config.grad_accum_steps * world,
            "gradient_clipping": config.grad_clip,
            "zero_optimization": {"stage": config.zero_stage},
            "bf16": {"enabled": info.dtype == torch.bfloat16},
            "steps_per_print": 2**31 - 1,
            "wall_clock_breakdown": False,
        }
        engine, optimizer, _, _ = deepspeed.initialize(
            model=model, optimizer=_adamw(model, config, info), config=ds_config, dist_init_required=False)
        return Wrapped(model=engine, optimizer=optimizer, autocast_dtype=None, **common)

    optimizer = _adamw(model, config, info)
    if world > 1:
        ids = [info.device.index] if info.device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    autocast = info.dtype if info.dtype != torch.float32 else None
    return Wrapped(model=model, optimizer=optimizer, autocast_dtype=autocast, **common)
