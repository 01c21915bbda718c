"""Step kinds of the distillation stage (light: no heavy imports)."""
from flows.engine.registry import StepKind

KINDS = [
    StepKind(name="distill.draft", config="components.distill.config:DraftDistillConfig",
             run="components.distill.steps:run_draft", inputs=("model", "tokens"), num_cpus=0,
             description="Distil a small draft Llama (same tokenizer) from the target by forward KL on Ray Train; reports "
                         "greedy acceptance vs a data-only draft; writes model/."),
]
