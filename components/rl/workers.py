"""The functions each Ray Train worker runs for ``rl.grpo``, ``rl.dpo`` and ``rl.reward_model``.

Every rank loads the same policy (base + LoRA, same seed) and wraps it in DDP. For GRPO rank 0
also starts the rollout engine; the loops themselves are ``grpo_train``, ``dpo_train`` and
``train_reward_model``. Rank 0 reports the adapter (or the reward model) as the run's checkpoint
at the end; its return value (per-step history) reaches the driver as ``Result.return_value``.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

# Ray Train's variables describe the learners' process group; vLLM's engine core (a child
# process that inherits the environment) must form its own single-rank group.
_TRAIN_GROUP_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")


@contextmanager
def _without_train_group_env():
    saved = {k: os.environ.pop(k) for k in _TRAIN_GROUP_ENV if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _policy(loop_config: dict, lora, seed: int, reference: bool = False):
    """(rank, PEFT model, DDP wrapper or None, comm, tokenizer) for this worker, from ``model_dir`` and
    ``adapter_dir`` (paths or ``input_ref`` references, opened here); with ``reference`` and a
    starting adapter, that adapter is also loaded frozen as the KL reference (components.sft.lora)."""
    import torch
    from transformers import AutoTokenizer

    from components.sft.lora import add_lora, load_base, load_reference
    from components.train.fit import distribute, open_ref, rank_world

    rank, _ = rank_world()
    torch.manual_seed(seed)
    # Opened on this worker's node (a store reference is downloaded into its cache): the base, and the
    # starting adapter, which is also the KL reference (GRPO) and the DPO reference.
    base, start = open_ref(loop_config["model_dir"]), open_ref(loop_config["adapter_dir"])
    model = add_lora(load_base(base, lora.quantize_4bit), lora, adapter_dir=start)
    if reference and start is not None:
        load_reference(model, start)
    ddp_model, comm = distribute(model)
    return rank, model, ddp_model, comm, AutoTokenizer.from_pretrained(base)


def grpo_worker(loop_config: dict) -> list[dict]:
    """``loop_config``: model_dir, adapter_dir (or None), prompts (rows), settings (GRPOConfig dict)."""
    from components.rl.config import GRPOConfig, default_rewards
    from components.rl.grpo import grpo_train
    from components.rl.rewards import build_rewards
    from components.rl.rollout import HFRollout, VLLMRollout
    from components.sft.lora import drop_reference
    from components.train.fit import open_ref, progress, report_final

    cfg = GRPOConfig.model_validate(loop_config["settings"])
    rank, model, ddp_model, comm, tok = _policy(loop_config, cfg.lora, cfg.seed,
                                                reference=cfg.kl_reference == "start")
    base = open_ref(loop_config["model_dir"])  # this node's copy: the rollout engine loads it, then the synced weights
    engine, engine_start_s = None, 0.0
    if rank == 0:
        if cfg.rollout_backend == "vllm":
            with _without_train_group_env():
                engine = VLLMRollout(base, cfg.vllm_max_model_len, cfg.seed)
            engine_start_s = engine.start_s
        else:
            engine = HFRollout(model, tok)
    # run_grpo resolves the default rewards; a direct caller gets the same choice here.
    specs = cfg.rewards or default_rewards(set().union(*loop_config["prompts"]))
    rewards = build_rewards(specs) if rank == 0 else None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            history = grpo_train(model, tok, loop_config["prompts"], rewards, cfg, engine, Path(tmp) / "sync", base,
                                 progress("grpo", every=1), comm=comm, ddp_model=ddp_model)
        finally:
            if engine is not None:
                engine.close()
    history[0]["time/engine_start_s"] = engine_start_s
    drop_reference(model)
    report_final({"step": cfg.num_steps, "done": 1.0}, save=(model, tok) if rank == 0 else None)
    return history


def dpo_worker(loop_config: dict) -> list[dict]:
    """``loop_config``: model_dir, adapter_dir (or None), train / held (pairs), settings (DPOConfig dict)."""
    from components.rl.config import DPOConfig
    from components.rl.dpo import dpo_train
    from components.train.fit import progress, report_final

    cfg = DPOConfig.model_validate(loop_config["settings"])
    rank, model, ddp_model, comm, tok = _policy(loop_config, cfg.lora, cfg.seed)
    history = dpo_train(model, tok, loop_config["train"], loop_config["held"], cfg,
                        progress("dpo"), comm=comm, ddp_model=ddp_model)
    report_final({"step": cfg.num_steps, "done": 1.0}, save=(model, tok) if rank == 0 else None)
    return history


def reward_model_worker(loop_config: dict) -> list[dict]:
    """``loop_config``: model_dir, train / held (pairs), settings (RewardModelConfig dict)."""
    import torch

    from components.rl.config import RewardModelConfig
    from components.rl.reward_model import load_reward_model, train_reward_model
    from components.train.fit import (
        distribute,
        open_ref,
        progress,
        rank_world,
        report_final,
    )

    cfg = RewardModelConfig.model_validate(loop_config["settings"])
    rank, _ = rank_world()
    torch.manual_seed(cfg.seed)
    model, tok = load_reward_model(open_ref(loop_config["model_dir"]))
    ddp_model, comm = distribute(model)
    history = train_reward_model(model, tok, loop_config["train"], loop_config["held"], cfg,
                                 progress("reward_model"), comm=comm, ddp_model=ddp_model)
    report_final({"step": cfg.num_steps, "done": 1.0}, save=(model, tok) if rank == 0 else None, subdir="model")
    return history
