"""The pretraining function: one plain function for one process, a Ray Train worker, or a GPU box.

``train(config, tokens_dir, output_dir)`` trains in the current process. If a process
group exists (Ray Train's ``TorchTrainer`` made one) it is one rank of many; otherwise it
is the only rank, and for the sharded strategies it makes a one-process group itself.
``train_loop_per_worker`` is the same function in the shape Ray Train calls.

Output (shared by all ranks, written by rank 0 where it is not sharded):
  checkpoints/step_NNNNNN/   sharded state + data position; the newest complete one is resumed
                             (with ray_checkpoints: in Ray Train's storage instead, e.g. s3://)
  train_metrics.jsonl        one line per logged step (a restart re-logs the steps after its checkpoint)
  train_resumes.jsonl        one line per resume: the step and the checkpoint it was read from
  train_summary.json         the final metrics of the run
  model/                     HF safetensors + config + tokenizer, after the last step
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from components.artifacts import Tokens
from components.train import checkpoint, device
from components.train.config import PretrainConfig
from components.train.data import RankSampler, TokenBlocks, val_indices
from components.train.flops import mfu
from components.train.outbox import Outbox


def lr_at(step: int, config: PretrainConfig) -> float:
    """Linear warmup to ``learning_rate`` then cosine to ``learning_rate·min_lr_ratio``; ``step`` counts from 0."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.num_steps - config.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return config.learning_rate * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)


def _init_process_group(strategy: str, info: device.DeviceInfo) -> bool:
    """Make a one-process group when running bare with a sharded strategy; True if we made it."""
    if dist.is_initialized() or strategy == "none":
        return False
    # DeepSpeed reads the torchrun variables even when handed an existing group.
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511"}.items():
        os.environ.setdefault(key, value)
    dist.init_process_group(info.backend, store=dist.HashStore(), rank=0, world_size=1)
    return True


def _mean_over_ranks(value: torch.Tensor) -> float:
    if dist.is_initialized() and dist.get_world_size() > 1:
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)  # gloo has no AVG
        value /= dist.get_world_size()
    return float(value)


@torch.no_grad()
def _val_loss(wrapped, blocks: TokenBlocks, indices: np.ndarray, micro: int, info) -> float | None:
    if len(indices) == 0:
        return None
    wrapped.train(False)
    total = torch.zeros((), device=info.device)
    autocast = torch.autocast(info.device.type, dtype=wrapped.autocast_dtype) if wrapped.autocast_dtype else None
    for start in range(0, len(indices), micro):
        x = torch.from_numpy(blocks.take(indices[start:start + micro])).to(info.device)
        if autocast:
            with autocast:
                loss = wrapped.model(input_ids=x, labels=x).loss
        else:
            loss = wrapped.model(input_ids=x, labels=x).loss
        total += loss.float() * len(x)
    wrapped.train(True)
    return _mean_over_ranks(total / len(indices))


def _maybe_inject_fault(config: PretrainConfig, step: int, rank: int, world: int, ckpt_root: Path) -> None:
    if config.fault_injection_step != step or rank != world - 1:
        return
    marker = ckpt_root / ".fault_injected"
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    raise RuntimeError(f"fault injection: rank {rank} fails at step {step} (testing recovery; "
                       "set fault_injection_step: null to disable)")


def train(config: PretrainConfig | dict, tokens_dir: str | Path, output_dir: str | Path,
          ray_checkpoints: bool = False, output_uri: str | None = None) -> dict[str, float]:
    """Train (or resume) to ``config.num_steps``; returns the final metrics (same on every rank).

    ``ray_checkpoints``: checkpoint through ``ray.train.report`` into Ray Train's storage (an object
    store on a cluster) instead of ``output_dir/checkpoints`` (only inside a Ray Train worker).
    ``output_uri``: also send the output files there (components/train/outbox.py): on a cluster with no
    shared disk ``output_dir`` is this node's folder, and the driver reads the files from the bucket."""
    entered_unix = time.time()  # wall clock: the benchmark compares it with the driver's fit() call
    config = PretrainConfig.model_validate(config) if isinstance(config, dict) else config
    tokens_dir, output_dir = Path(tokens_dir), Path(output_dir)
    info = device.describe(config.precision)
    made_group = _init_process_group(config.strategy, info)
    try:
        return _train(config, tokens_dir, output_dir, info, entered_unix, ray_checkpoints, output_uri)
    finally:
        if made_group:
            dist.destroy_process_group()


def _train(config: PretrainConfig, tokens_dir: Path, output_dir: Path, info: device.DeviceInfo,
           entered_unix: float, ray_checkpoints: bool = False, output_uri: str | None = None) -> dict[str, float]:
    t_enter = time.perf_counter()
    from transformers import AutoModelForCausalLM

    from components.train.export import export_hf
    from components.train.parallel import wrap

    t_imports = time.perf_counter()
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    out = Outbox(output_dir, output_uri, rank)
    manifest = Tokens.read(tokens_dir)
    seq_len = manifest.seq_len
    train_blocks, val_blocks = TokenBlocks(tokens_dir, "train"), TokenBlocks(tokens_dir, "val")
    sampler = RankSampler(len(train_blocks), config.seed, world, rank, config.micro_batch_size,
                          config.grad_accum_steps)
    val_idx = val_indices(len(val_blocks), world, rank, config.eval_batches * config.micro_batch_size)

    t_data = time.perf_counter()
    model_config = config.model.build(vocab_size=manifest.vocab_size, max_seq_len=seq_len)
    model_config.use_cache = False
    torch.manual_seed(config.seed)  # every rank builds the same initial weights
    model = AutoModelForCausalLM.from_config(model_config, dtype=torch.float32)
    wrapped = wrap(model, config, info)
    wrapped.train(True)

    ckpt_root = output_dir / "checkpoints"
    step, samples, resumed_from = 0, 0, 0
    if ray_checkpoints:
        restored = checkpoint.load_reported(config.strategy, wrapped.model, wrapped.optimizer)
    else:
        latest = checkpoint.latest(ckpt_root)
        restored = (checkpoint.load(latest, config.strategy, wrapped.model, wrapped.optimizer), str(latest)) \
            if latest is not None else None
    if restored is not None:
        state, where = restored
        step, samples, resumed_from = state["step"], state["samples_consumed"], state["step"]
        if rank == 0:  # which checkpoint each restart read (the summary only has the last one's step)
            out.append(RESUMES_FILE, {"step": step, "checkpoint": where, "ts": time.time()})

    t_model = time.perf_counter()
    tokens_per_step = sampler.global_batch * seq_len
    peak = config.peak_tflops * 1e12 if config.peak_tflops else info.peak_flops
    step_times: list[float] = []
    val_s = ckpt_s = 0.0  # inside the loop window, not inside a step: what the steady figure pays for them
    last: dict[str, float] = {}
    val_loss = None
    # The steady window: from the end of the first two steps (allocator and kernel warm-up) to the
    # end of the last, *including* what a production run does between steps — metrics lines,
    # validation and checkpoints at the configured cadence — so it shows what a run really gets.
    steady_from, steady_t0, loop_t0 = min(step + 2, config.num_steps - 1), None, time.perf_counter()
    while step < config.num_steps:
        if step == steady_from:
            steady_t0 = time.perf_counter()
        _maybe_inject_fault(config, step + 1, rank, world, ckpt_root)
        lr = lr_at(step, config)
        wrapped.set_lr(lr)
        device.synchronize(info.device)
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=info.device)
        for micro in range(config.grad_accum_steps):
            x = torch.from_numpy(train_blocks.take(sampler.micro_batch(samples, micro))).to(info.device)
            loss_sum += wrapped.forward_backward(x, last_micro=micro == config.grad_accum_steps - 1).float()
        grad_norm = wrapped.step()
        loss = _mean_over_ranks(loss_sum / config.grad_accum_steps)
        device.synchronize(info.device)
        dt = time.perf_counter() - t0
        step, samples = step + 1, samples + sampler.global_batch
        step_times.append(dt)

        record = {"loss": loss, "lr": lr, "grad_norm": grad_norm, "step_time_s": dt,
                  "tokens_per_s": tokens_per_step / dt, "samples_consumed": samples,
                  "peak_mem_gib": device.peak_memory_bytes(info.device) / 2**30}
        step_mfu = mfu(tokens_per_step / dt, model_config, seq_len, world, peak)
        if step_mfu is not None:
            record["mfu"] = step_mfu
        if step % config.eval_every == 0 or step == config.num_steps:
            t_val = time.perf_counter()
            val_loss = _val_loss(wrapped, val_blocks, val_idx, config.micro_batch_size, info)
            val_s += time.perf_counter() - t_val
            if val_loss is not None:
                record.update(val_loss=val_loss, val_ppl=math.exp(min(val_loss, 50.0)))
        if step % config.checkpoint_every == 0 or step == config.num_steps:
            t_ckpt = time.perf_counter()
            train_state = {"step": step, "samples_consumed": samples, "world_size": world, "seed": config.seed}
            out.flush()  # the log in the bucket reaches at least the checkpoint a restart resumes from
            if ray_checkpoints:
                checkpoint.report(train_state, config.strategy, wrapped.model, wrapped.optimizer)
            else:
                checkpoint.save(ckpt_root, step, train_state, config.strategy, wrapped.model,
                                wrapped.optimizer, config.keep_checkpoints)
            ckpt_s += time.perf_counter() - t_ckpt
        last = record
        if rank == 0 and (step % config.log_every == 0 or step == config.num_steps or "val_loss" in record):
            out.append(METRICS_FILE, {"step": step, "metrics": record})

    t_loop_end = time.perf_counter()
    steady_steps = step - steady_from if steady_t0 is not None else 0
    state_dict = checkpoint.full_state_dict(config.strategy, wrapped.model, config.zero_stage)
    if rank == 0:
        export_hf(state_dict, model_config, tokens_dir / "tokenizer", output_dir / "model", info.dtype)
        out.put("model")
    if dist.is_initialized():
        dist.barrier()

    # Steady-state throughput: skip the first steps of this run (allocator and kernel warm-up).
    steady = step_times[2:] if len(step_times) > 4 else step_times
    tokens_per_s = tokens_per_step * len(steady) / sum(steady) if steady else float("nan")
    summary = {"loss": last.get("loss", float("nan")), "steps": float(step), "resumed_from_step": float(resumed_from),
               "tokens_per_s": tokens_per_s, "peak_mem_gib": last.get("peak_mem_gib", float("nan")),
               "world_size": float(world)}
    if steady_steps > 0:
        summary["loop_tokens_per_s"] = tokens_per_step * steady_steps / (t_loop_end - steady_t0)
    summary.update(entered_unix=entered_unix, imports_s=t_imports - t_enter, data_open_s=t_data - t_imports,
                   model_build_s=t_model - t_data, first_steps_s=(steady_t0 or t_loop_end) - loop_t0,
                   loop_s=t_loop_end - loop_t0, val_s=val_s, checkpoint_s=ckpt_s,
                   export_s=time.perf_counter() - t_loop_end)
    if val_loss is not None:
        summary.update(val_loss=val_loss, val_ppl=math.exp(min(val_loss, 50.0)))
    run_mfu = mfu(tokens_per_s, model_config, seq_len, world, peak)
    if run_mfu is not None:
        summary["mfu"] = run_mfu
    if rank == 0:
        out.write_text(SUMMARY_FILE, json.dumps(summary, indent=1))
    out.close()
    return summary


METRICS_FILE = "train_metrics.jsonl"
SUMMARY_FILE = "train_summary.json"
WORKERS_FILE = "train_workers.jsonl"
RESUMES_FILE = "train_resumes.jsonl"
RAY_CALLS_FILE = "ray_calls.json"  # rank 0's timing of the Ray calls around train() (benchmarks read it)


def _record_worker(out: Outbox) -> None:
    """One line per worker start: rank, Ray node and process id, so a run (and a restart after a node
    loss) shows where its workers ran (the step tags them in MLflow; fault tests find the process)."""
    import ray
    import ray.train

    ctx = ray.train.get_context()
    out.append(WORKERS_FILE, {"rank": ctx.get_world_rank(), "node_id": ray.get_runtime_context().get_node_id(),
                              "pid": os.getpid(), "ts": time.time()})
    out.close()


def train_loop_per_worker(loop_config: dict) -> None:
    """Ray Train entry: ``loop_config`` = {"config": PretrainConfig dump, "tokens_dir" (a path or the
    tokens artifact's store URI), "output_dir",
    "ray_checkpoints", "output_uri"}; with an ``output_uri`` (no shared disk), ``output_dir`` is a folder
    on this worker's node that only the workers use, removed by rank 0 once everything is in the bucket."""
    import ray.train

    entered_unix, t0 = time.time(), time.perf_counter()
    config = PretrainConfig.model_validate(loop_config["config"])
    output_dir, output_uri = Path(loop_config["output_dir"]), loop_config.get("output_uri")
    rank = ray.train.get_context().get_world_rank()
    _record_worker(Outbox(output_dir, output_uri, rank))
    t_record = time.perf_counter()
    if not device.use_gpu():
        torch.set_num_threads(max(1, int(config.cpus_per_worker)))
    # An input's store URI (s3://...) on an object-store root: this node's copy, downloaded once into its
    # cache; the driver's local copy is on another node's disk.
    from flows.engine.store import open_artifact

    tokens_dir = open_artifact(loop_config["tokens_dir"])
    summary = train(config, tokens_dir, output_dir,
                    ray_checkpoints=loop_config.get("ray_checkpoints", False), output_uri=output_uri)
    t_report = time.perf_counter()
    # Ray Train 2 keeps reported metrics only alongside checkpoints, and ours live in the
    # artifact; the driver reads train_summary.json. The report still marks a clean finish
    # (and is a barrier: past it, no rank writes to output_dir any more).
    ray.train.report(summary)
    if rank == 0:
        # Written after the report, so the driver sees what the report itself cost.
        box = Outbox(output_dir, output_uri, rank)
        box.write_text(RAY_CALLS_FILE, json.dumps({
            "entered_unix": entered_unix, "record_worker_s": t_record - t0, "report_s": time.perf_counter() - t_report,
            "function_s": time.perf_counter() - t0, "returned_unix": time.time(),
            "nice": os.getpriority(os.PRIO_PROCESS, 0)}))  # Ray starts workers at RAY_worker_niceness (15)
        box.close()
        if output_uri is not None:
            import shutil

            shutil.rmtree(output_dir, ignore_errors=True)  # all of it is in the bucket; the driver reads it there
