"""Step kinds of the SFT stage (light: no heavy imports)."""
from flows.engine.registry import PII_SCRUBBED, StepKind

KINDS = [
    StepKind(name="sft.dataset", config="components.sft.config:SFTDatasetConfig",
             run="components.sft.steps:run_dataset", inputs=("docs",),
             requires_traits=(("docs", PII_SCRUBBED),),
             description="Instruction data from the docs: sft.jsonl (chat), prompts.jsonl (GRPO, checkable answers), eval.jsonl."),
    StepKind(name="sft.lora", config="components.sft.config:SFTConfig",
             run="components.sft.steps:run_lora", inputs=("model", "data"), num_cpus=0,
             description="LoRA/QLoRA SFT with response-only loss on Ray Train; writes adapter/ (and merged/)."),
]
