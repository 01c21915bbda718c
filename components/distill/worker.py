"""The function each Ray Train worker runs for ``distill.draft`` (or a plain call without Ray).

Every rank loads the target and builds the same draft init (same seed, optional layer-drop
copy), then trains it by forward KL with DDP over the draft; the data-only baseline, when
asked for, gets the same init, batches and schedule. Rank 0 measures greedy acceptance of
both against the target and checkpoints the distilled draft (``model/``).
"""
from __future__ import annotations


def distill_worker(loop_config: dict) -> dict:
    """``loop_config``: target_dir, tokens_dir (paths or ``input_ref`` references), settings (DraftDistillConfig dict).

    Returns {"distill": history, "data_only": history or [], "result": acceptance metrics (rank 0)}.
    """
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from components.distill.acceptance import measure, target_greedy
    from components.distill.config import DraftDistillConfig
    from components.distill.draft import (
        draft_config,
        init_from_target,
        new_draft,
        train_draft,
    )
    from components.train.data import TokenBlocks
    from components.train.fit import (
        distribute,
        open_ref,
        progress,
        rank_world,
        report_final,
    )

    cfg = DraftDistillConfig.model_validate(loop_config["settings"])
    rank, _ = rank_world()
    target_dir, tokens_dir = open_ref(loop_config["target_dir"]), open_ref(loop_config["tokens_dir"])  # this node's copies
    target = AutoModelForCausalLM.from_pretrained(target_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(target_dir)
    train_blocks, val_blocks = TokenBlocks(tokens_dir, "train"), TokenBlocks(tokens_dir, "val")
    dc = draft_config(target.config, cfg)

    def train(model, teacher, prefix: str) -> list[dict]:
        ddp_model, comm = distribute(model)
        return train_draft(model, train_blocks, cfg, teacher=teacher, comm=comm, ddp_model=ddp_model,
                           log=progress(f"distill:{prefix}", every=20))

    torch.manual_seed(cfg.seed)
    draft = new_draft(dc)
    if cfg.init_from_target:
        init_from_target(draft, target)
    init = {k: v.clone() for k, v in draft.state_dict().items()}  # the baseline starts from the same weights
    out = {"distill": train(draft, target, "distill"), "data_only": [], "result": {}}
    baseline = None
    if cfg.compare_data_only:
        baseline = new_draft(dc)
        baseline.load_state_dict(init)
        out["data_only"] = train(baseline, None, "data_only")

    if rank == 0:
        eval_blocks = val_blocks if len(val_blocks) else train_blocks
        n = min(cfg.num_eval_prompts, len(eval_blocks))
        prefix_len = min(cfg.eval_prefix_len, eval_blocks.seq_len)
        prefixes = torch.from_numpy(eval_blocks.take(np.arange(n))[:, :prefix_len])
        sequences = target_greedy(target, prefixes, cfg.eval_new_tokens)
        k = cfg.num_speculative_tokens
        result = {f"distilled_{m}": v for m, v in measure(draft, sequences, prefix_len, k).items()}
        if baseline is not None:
            result.update({f"data_only_{m}": v for m, v in measure(baseline, sequences, prefix_len, k).items()})
        result.update({"distilled_final_kl": out["distill"][-1]["kl"],
                       "draft_params": sum(p.numel() for p in draft.parameters()),
                       "target_params": sum(p.numel() for p in target.parameters()),
                       "eval_split": "val" if len(val_blocks) else "train"})
        out["result"] = result
    report_final({"step": cfg.num_steps, "done": 1.0}, save=(draft, tok) if rank == 0 else None, subdir="model")
    return out
