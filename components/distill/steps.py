"""Step function ``distill.draft``: a KL-distilled draft, and (optionally) a data-only one to compare."""
from __future__ import annotations

import json

import numpy as np

from components.distill.config import DraftDistillConfig


def run_draft(ctx, config: DraftDistillConfig) -> dict[str, float]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    from components.distill.acceptance import measure, target_greedy
    from components.distill.draft import draft_config, init_from_target, train_draft
    from components.sft.artifacts import model_dir
    from components.train.data import TokenBlocks

    target_dir = model_dir(ctx.input("model"))
    tokens = ctx.input("tokens")
    target = AutoModelForCausalLM.from_pretrained(target_dir, dtype=torch.float32).eval()
    train_blocks, val_blocks = TokenBlocks(tokens, "train"), TokenBlocks(tokens, "val")
    if len(train_blocks) == 0:
        raise ValueError(f"{tokens} has no train blocks to distil on")
    if target.config.vocab_size < int(train_blocks.take(np.arange(min(len(train_blocks), 64))).max()) + 1:
        raise ValueError("token ids exceed the target's vocabulary: the tokens input was packed with another tokenizer")
    dc = draft_config(target.config, config)

    torch.manual_seed(config.seed)
    draft = LlamaForCausalLM(dc)
    if config.init_from_target:
        init_from_target(draft, target)
    init = {k: v.clone() for k, v in draft.state_dict().items()}  # the baseline starts from the same weights
    hist = train_draft(draft, train_blocks, config, teacher=target,
                       log=lambda rec, step: ctx.log_metrics({f"distill/{k}": v for k, v in rec.items()}, step=step))

    eval_blocks = val_blocks if len(val_blocks) else train_blocks
    n = min(config.num_eval_prompts, len(eval_blocks))
    prefix_len = min(config.eval_prefix_len, eval_blocks.seq_len)
    prefixes = torch.from_numpy(eval_blocks.take(np.arange(n))[:, :prefix_len])
    sequences = target_greedy(target, prefixes, config.eval_new_tokens)
    k = config.num_speculative_tokens
    result = {f"distilled_{m}": v for m, v in measure(draft, sequences, prefix_len, k).items()}
    result["distilled_final_kl"] = hist[-1]["kl"]

    if config.compare_data_only:
        baseline = LlamaForCausalLM(dc)
        baseline.load_state_dict(init)
        train_draft(baseline, train_blocks, config, teacher=None,
                    log=lambda rec, step: ctx.log_metrics({f"data_only/{k}": v for k, v in rec.items()}, step=step))
        result.update({f"data_only_{m}": v for m, v in measure(baseline, sequences, prefix_len, k).items()})

    out = ctx.output / "model"
    draft.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(target_dir).save_pretrained(out)
    result.update({"draft_params": sum(p.numel() for p in draft.parameters()),
                   "target_params": sum(p.numel() for p in target.parameters())})
    ctx.log_metrics(result)
    ctx.set_tags({"distill.loss": "forward_kl", "distill.acceptance": "greedy argmax agreement along target-greedy "
                  "continuations (HF); vLLM draft_model serving is measured by the serving benchmark",
                  "distill.eval_split": "val" if len(val_blocks) else "train"})
    (ctx.output / "report.json").write_text(json.dumps(result, indent=2))
    return {"distilled_acceptance_rate": result["distilled_acceptance_rate"], **result}
