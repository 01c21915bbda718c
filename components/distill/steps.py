"""Step function ``distill.draft``: a KL-distilled draft, and (optionally) a data-only one to compare,
trained on Ray Train (components/distill/worker.py)."""
from __future__ import annotations

import json

import numpy as np

from components.artifacts import Model, Tokens
from components.distill.config import DraftDistillConfig
from components.models.compat import copy_tokenizer_files
from flows.engine.registry import step_kind


@step_kind("distill.draft", inputs=("model", "tokens"), num_cpus=0, effects=("acceptance_rate",),
           description="Distil a small draft (a Llama preset or the target's own architecture, same tokenizer) from the target by forward KL on Ray Train; "
                       "reports greedy acceptance vs a data-only draft; writes model/.")
def run_draft(ctx, config: DraftDistillConfig) -> dict[str, float]:
    from transformers import AutoConfig

    from components.distill.draft import draft_config
    from components.distill.worker import distill_worker
    from components.train.data import TokenBlocks
    from components.train.fit import fit, input_ref

    target_dir = Model.of(ctx).dir
    Tokens.of(ctx)
    tokens = ctx.input("tokens")
    train_blocks = TokenBlocks(tokens, "train")
    if len(train_blocks) == 0:
        raise ValueError(f"{tokens} has no train blocks to distil on")
    target_config = AutoConfig.from_pretrained(target_dir)
    if target_config.vocab_size < int(train_blocks.take(np.arange(min(len(train_blocks), 64))).max()) + 1:
        raise ValueError("token ids exceed the target's vocabulary: the tokens input was packed with another tokenizer")
    draft_config(target_config, config)  # shape errors here, before any worker starts

    # References the workers open on their own nodes (the store URI on an object-store root).
    out = fit(distill_worker, {"target_dir": input_ref(ctx, "model", target_dir), "tokens_dir": input_ref(ctx, "tokens"),
                               "settings": config.model_dump()},
              num_workers=config.num_workers, cpus_per_worker=1.0, name="distill", output=ctx.output, subdir="model",
              storage_uri=ctx.scratch_uri, set_tags=ctx.set_tags)
    for name in ("distill", "data_only"):
        for step, rec in enumerate(out[name], 1):
            ctx.log_metrics({f"{name}/{k}": v for k, v in rec.items()}, step=step)
    result = out["result"]
    eval_split = result.pop("eval_split")
    ctx.log_metrics(result)
    ctx.set_tags({"distill.loss": "forward_kl", "distill.acceptance": "greedy argmax agreement along target-greedy "
                  "continuations (HF); vLLM draft_model serving is measured by the serving benchmark",
                  "distill.eval_split": eval_split, "distill.num_workers": config.num_workers})
    (ctx.output / "report.json").write_text(json.dumps(result, indent=2))
    copy_tokenizer_files(target_dir, ctx.output / "model")  # the target's tokenizer, byte for byte
    if "data_only_acceptance_rate" in result:
        ctx.report_effect("acceptance_rate", result["distilled_acceptance_rate"], result["data_only_acceptance_rate"],
                          higher_is_better=True, baseline_name="data-only draft")
    return {"distilled_acceptance_rate": result["distilled_acceptance_rate"], **result}
