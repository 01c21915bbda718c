"""Per-worker training functions on Ray Train: the driver side (``fit``) and the worker side
(rank/world, reporting with a checkpoint, broadcast/mean across ranks).

The post-training steps (``sft.lora``, ``rl.*``, ``distill.draft``) share this: N
``TorchTrainer`` workers (gloo on CPU, NCCL on GPU, chosen in ``components.train.device``),
the function's return value on rank 0 as the history, and one folder of rank 0's last
checkpoint copied into the step's artifact (through the bucket when the nodes share no disk).
Outside a worker (a plain call, GPU images without Ray) the worker helpers act as a single process.

What a worker reads from the step's inputs travels as ``input_ref(ctx, name, path)`` and is opened in
the worker with ``open_ref``: on an object-store root the driver's copy of an input is on the driver's
disk only, so the worker gets the input's store URI and downloads it into its own node's cache.
"""
from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

# A reference ``open_ref`` resolves: a local path (str), or {"artifact": store URI, "path": inside it}.
Ref = str | dict[str, str]


def input_ref(ctx, name: str, path: str | Path | None = None) -> Ref:
    """A reference to input ``name`` of ``ctx`` (or to ``path``, a file or folder inside it) that a Ray
    Train worker on any node opens with ``open_ref``.

    On a local root: the local path itself (every worker sees this disk). On an object-store root
    (``ctx.input_uri(name)`` is ``s3://...``): ``{"artifact": <the input's store URI>, "path": <path
    relative to the input>}``, never the driver's copy, which lies on the driver's node only.
    """
    root = Path(ctx.input(name))
    target = root if path is None else Path(path)
    uri = ctx.input_uri(name)
    if "://" not in uri or uri.startswith("file://"):
        return str(target)
    try:
        rel = target.relative_to(root)
    except ValueError:
        raise ValueError(f"{target} is not inside input {name!r} of step {ctx.name!r} ({root}): a worker on "
                         "another node can only open files of the step's inputs; pass a path inside it, or "
                         "send small data inline in loop_config") from None
    return {"artifact": uri, "path": rel.as_posix()}


def open_ref(ref: Ref | Path | None) -> Path | None:
    """The local path of an ``input_ref`` on this worker's node: a local path as is; a store reference
    downloaded once into this node's cache (``flows.engine.store.open_artifact``). None stays None."""
    from flows.engine.store import open_artifact

    if ref is None:
        return None
    if isinstance(ref, dict):
        return open_artifact(ref["artifact"]) / ref["path"]
    return open_artifact(str(ref))


def fit(worker: Callable[[dict], Any], loop_config: dict, *, num_workers: int, cpus_per_worker: float, name: str,
        output: Path, subdir: str, storage_uri: str | None = None,
        set_tags: Callable[[dict], None] | None = None) -> Any:
    """``worker(loop_config)`` on ``num_workers`` workers; ``<checkpoint>/<subdir>`` → ``output/<subdir>``.

    Returns rank 0's return value. The checkpoint is Ray Train's storage: a temp dir of this node, or,
    with ``storage_uri`` (``ctx.scratch_uri`` on an object-store root, where rank 0 may run on a node
    that shares no disk with this one), that folder in the bucket, which the checkpoint is read back from.
    ``set_tags`` (``ctx.set_tags``) gets where each rank ran: ``llmflow.train_worker.rank<N>.node_id``.
    """
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from components.train.device import distributed_backend, use_gpu
    from components.train.outbox import ray_storage, remove

    # A fresh run name in the bucket: Ray Train would resume a run of the same name found there.
    run_name = name if storage_uri is None else f"{name}-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        storage = ray_storage(storage_uri) if storage_uri else {"storage_path": str(Path(tmp) / "ray")}
        trainer = TorchTrainer(
            _with_nodes(worker), train_loop_config=loop_config,
            scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu(),
                                         resources_per_worker={"CPU": cpus_per_worker}),
            torch_config=TorchConfig(backend=distributed_backend()),
            run_config=RunConfig(name=run_name, **storage),
        )
        result = trainer.fit()
        if result.error:
            raise result.error
        with result.checkpoint.as_directory() as ckpt:
            shutil.copytree(Path(ckpt) / subdir, Path(output) / subdir)
    if storage_uri is not None:
        remove(f"{storage_uri.rstrip('/')}/{run_name}")  # copied into the artifact; a retry starts afresh
    out = result.return_value
    if set_tags is not None:
        set_tags({**{f"llmflow.train_worker.rank{r}.node_id": n for r, n in enumerate(out["nodes"])},
                  "llmflow.train_worker.nodes": ",".join(sorted(set(out["nodes"])))})
    return out["value"]


def _with_nodes(worker: Callable[[dict], Any]) -> Callable[[dict], dict]:
    """``worker``, returning ``{"value": its value, "nodes": [node id of rank 0, 1, ...]}`` (gathered over
    the workers' process group), so the step can say where its workers ran."""
    def run(loop_config: dict) -> dict:
        import ray
        import torch.distributed as dist

        value = worker(loop_config)
        node = ray.get_runtime_context().get_node_id()
        nodes = [node]
        if dist.is_initialized() and dist.get_world_size() > 1:
            nodes = [None] * dist.get_world_size()
            dist.all_gather_object(nodes, node)
        return {"value": value, "nodes": nodes}
    return run


def _in_train_worker() -> bool:
    try:
        import ray.train
    except ImportError:  # GPU images without Ray run this loop as a plain function
        return False
    try:
        ray.train.get_context()
    except RuntimeError:  # "Ray Train function utilities not initialized": a plain single-process run
        return False
    return True


def rank_world() -> tuple[int, int]:
    if not _in_train_worker():
        return 0, 1
    import ray.train

    ctx = ray.train.get_context()
    return ctx.get_world_rank(), ctx.get_world_size()


def report_final(metrics: dict, save=None, subdir: str = "adapter") -> None:
    """The run's one ``ray.train.report``: last metrics, and ``save=(model, tokenizer)`` on rank 0
    as the checkpoint (in ``subdir``: the adapter, or a whole model). No-op outside a worker.

    Once, not per step: a report costs ~2 s on Ray Train 2.60 (measured on an idle 2-core
    machine, 1 worker, 100 reports), which made a 100-step distillation spend minutes in it.
    Per-step metrics travel back as the function's return value instead; ``progress`` prints them.
    """
    if not _in_train_worker():
        return
    import ray.train

    if save is None:
        ray.train.report(metrics)
        return
    model, tok = save
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(Path(tmp) / subdir)
        tok.save_pretrained(Path(tmp) / subdir)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def progress(name: str, every: int = 10):
    """A ``log(rec, step)`` callback that prints every ``every``-th step's metrics on rank 0."""
    rank, _ = rank_world()

    def log(rec: dict, step: int) -> None:
        if rank == 0 and step % every == 0:
            print(f"[{name}] step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in rec.items()
                                                        if isinstance(v, (int, float))), flush=True)
    return log


def distribute(model):
    """(DDP wrapper of ``model`` or None, comm) for this worker: DDP only with more than one rank."""
    _, world = rank_world()
    if world == 1:
        return None, LocalComm()
    import ray.train.torch

    return ray.train.torch.prepare_model(model, move_to_device=False), DistComm()


class LocalComm:
    """One process: broadcasts return their argument, means are the values themselves."""

    rank, world = 0, 1

    def broadcast(self, obj):
        return obj

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        return values


class DistComm:
    """torch.distributed (the Ray Train workers' process group)."""

    def __init__(self):
        import torch.distributed as dist

        self.dist, self.rank, self.world = dist, dist.get_rank(), dist.get_world_size()

    def broadcast(self, obj):
        box = [obj]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        import torch

        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
        self.dist.all_reduce(t)
        return {k: float(v) / self.world for k, v in zip(keys, t)}
