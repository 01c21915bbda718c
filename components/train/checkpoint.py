"""Sharded checkpoints inside the step's artifact, and finding the latest one to resume from.

Layout: ``checkpoints/step_000020/`` holds ``state/`` (torch distributed checkpoint for
strategies none/fsdp2, DeepSpeed's own format for ZeRO) and ``train_state.json`` (step and
data position). A ``COMPLETE`` file, written by rank 0 after every rank has finished, marks
a checkpoint usable: a crash mid-save leaves a directory that resume skips.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
import torch.distributed as dist

COMPLETE = "COMPLETE"


def step_dir(root: Path, step: int) -> Path:
    return Path(root) / f"step_{step:06d}"


def latest(root: Path) -> Path | None:
    """The newest complete checkpoint under ``root``, or None."""
    done = sorted(p.parent for p in Path(root).glob(f"step_*/{COMPLETE}"))
    return done[-1] if done else None


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _single_process() -> bool:
    """One rank holds the whole state: dcp then skips its planning collectives. A one-worker
    TorchTrainer still has a (one-rank) gloo group, and with it each save planned and synchronised
    over the group: 3.4x the bare loop's save time in benchmarks/train_ray_overhead.py."""
    return not dist.is_initialized() or dist.get_world_size() == 1


def save(root: Path, step: int, train_state: dict, strategy: str, model, optimizer, keep: int) -> Path:
    """Every rank calls this; rank 0 writes the metadata and prunes old checkpoints."""
    path = step_dir(root, step)
    _write_state(path, train_state, strategy, model, optimizer)
    _barrier()
    if _rank() == 0:
        (path / "train_state.json").write_text(json.dumps(train_state))
        (path / COMPLETE).touch()
        for old in sorted(p.parent for p in Path(root).glob(f"step_*/{COMPLETE}"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return path


def report(train_state: dict, strategy: str, model, optimizer) -> None:
    """Every rank: write its shards to a local staging folder and hand it to Ray Train, which merges all
    ranks' files into one checkpoint under RunConfig's storage (``s3://`` on a cluster; no node needs
    another's disk). ``ray.train.report`` is a barrier and registers the checkpoint only once every
    rank has uploaded, so a crash mid-save leaves the previous one as the latest (no COMPLETE file)."""
    import tempfile

    import ray.train

    with tempfile.TemporaryDirectory(prefix="llmflow-ckpt-") as staging:
        path = Path(staging)
        _write_state(path, train_state, strategy, model, optimizer)
        if _rank() == 0:
            (path / "train_state.json").write_text(json.dumps(train_state))
        ray.train.report({"step": train_state["step"]}, checkpoint=ray.train.Checkpoint.from_directory(staging),
                         checkpoint_dir_name=step_dir(Path(), train_state["step"]).name)


def load_reported(strategy: str, model, optimizer) -> tuple[dict, str] | None:
    """Restore from Ray Train's latest checkpoint (downloaded from its storage to this node); returns
    the saved train_state and where the checkpoint lives, or None on a fresh start."""
    import ray.train

    ckpt = ray.train.get_checkpoint()
    if ckpt is None:
        return None
    with ckpt.as_directory() as local:
        return load(Path(local), strategy, model, optimizer), ckpt.path


def _write_state(path: Path, train_state: dict, strategy: str, model, optimizer) -> None:
    if strategy == "deepspeed":
        # DeepSpeed writes its own ZeRO-partitioned files; `model` is the engine here.
        model.save_checkpoint(str(path / "state"), tag="ds", client_state={"train_state": train_state})
    else:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_sd, optim_sd = get_state_dict(model, optimizer)
        dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(path / "state"),
                 no_dist=_single_process())


def load(path: Path, strategy: str, model, optimizer) -> dict:
    """Restore model + optimizer in place from ``path``; returns the saved train_state."""
    if strategy == "deepspeed":
        load_path, _ = model.load_checkpoint(str(path / "state"), tag="ds")
        if load_path is None:
            raise RuntimeError(f"DeepSpeed found no checkpoint in {path / 'state'}")
    else:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (
            get_state_dict,
            set_state_dict,
        )

        model_sd, optim_sd = get_state_dict(model, optimizer)
        state = {"model": model_sd, "optim": optim_sd}
        dcp.load(state, checkpoint_id=str(path / "state"), no_dist=_single_process())
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    return json.loads((path / "train_state.json").read_text())


def full_state_dict(strategy: str, model, zero_stage: int) -> dict[str, torch.Tensor] | None:
    """The unsharded model weights on rank 0 (None elsewhere); a collective for sharded strategies."""
    if strategy == "fsdp2":
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
        )

        sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return sd if _rank() == 0 else None
    if strategy == "deepspeed":
        module = model.module
        if zero_stage == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
                sd = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()} if _rank() == 0 else None
            return sd
        return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()} if _rank() == 0 else None
    module = getattr(model, "module", model)  # DDP wraps the model
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()} if _rank() == 0 else None
