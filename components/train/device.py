"""The one module that chooses devices and backends: cuda or cpu, nccl or gloo, bf16 or fp32.

Everything else asks here instead of calling ``.cuda()`` or hard-coding a backend, so the
same training code runs on a 2-core laptop and on an H100 node without branching.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

# Dense bf16 tensor-core peaks (no sparsity), FLOP/s. MFU divides achieved FLOP/s by these.
_GPU_PEAK_BF16 = {
    "H200": 989e12,
    "H100": 989e12,   # SXM; the PCIe card is lower (756e12) and is matched first below
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 125e12,
}


@dataclass(frozen=True)
class DeviceInfo:
    device: torch.device
    backend: str            # torch.distributed backend
    dtype: torch.dtype      # autocast / compute dtype
    peak_flops: float | None  # per device, for MFU; None where unknown (CPUs)
    name: str


def use_gpu() -> bool:
    """Whether training should ask for GPUs (Ray Train's ScalingConfig.use_gpu)."""
    return torch.cuda.is_available()


def distributed_backend() -> str:
    return "nccl" if use_gpu() else "gloo"


def train_device() -> torch.device:
    """This process's device: the GPU of its local rank (Ray Train sets LOCAL_RANK), else CPU."""
    if not use_gpu():
        return torch.device("cpu")
    index = int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def compute_dtype(precision: str = "auto") -> torch.dtype:
    """bf16 mixed precision on GPU, fp32 on CPU (CPU bf16 matmuls are slow on most parts)."""
    if precision == "auto":
        return torch.bfloat16 if use_gpu() else torch.float32
    return {"bf16": torch.bfloat16, "fp32": torch.float32}[precision]


def peak_flops(device: torch.device, dtype: torch.dtype) -> float | None:
    """Per-device peak FLOP/s for ``dtype``; None on CPU, where no honest number is known."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    if "H100" in name and "PCIe" in name:
        bf16 = 756e12
    else:
        bf16 = next((v for k, v in _GPU_PEAK_BF16.items() if k in name), None)
    if bf16 is None:
        return None
    return bf16 if dtype == torch.bfloat16 else bf16 / 2  # TF32 tensor cores: half the bf16 rate


def describe(precision: str = "auto") -> DeviceInfo:
    device = train_device()
    dtype = compute_dtype(precision)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return DeviceInfo(device=device, backend=distributed_backend(), dtype=dtype,
                      peak_flops=peak_flops(device, dtype), name=name)


def peak_memory_bytes(device: torch.device) -> int:
    """Peak memory since the last reset: allocator peak on GPU, process max RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def prepare_deepspeed() -> None:
    """Backend choice for DeepSpeed on CPU: plain torch.distributed (gloo), not its shm op.

    On a CPU machine DeepSpeed JIT-compiles a C++ shared-memory all-reduce the first time a
    process initialises it (minutes on 2 cores, per fresh machine). Gloo is what FSDP2 uses
    here too, so both strategies are compared on the same transport; on GPU nothing changes.
    """
    if use_gpu():
        return
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
