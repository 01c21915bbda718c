"""Step kinds of the RL stage (light: no heavy imports)."""
from flows.engine.registry import StepKind

KINDS = [
    StepKind(name="rl.grpo", config="components.rl.config:GRPOConfig",
             run="components.rl.steps:run_grpo", inputs=("model", "data", "adapter?"), num_cpus=0,
             description="GRPO on Ray Train (DDP over a LoRA adapter) with vLLM rollouts on rank 0 and in-place weight sync; writes adapter/."),
    StepKind(name="rl.dpo", config="components.rl.config:DPOConfig",
             run="components.rl.steps:run_dpo", inputs=("model", "prefs", "adapter?"), num_cpus=0,
             description="DPO on Ray Train (DDP over a LoRA adapter) from a prefs artifact (preferences.jsonl: prompt/chosen/rejected + provenance); writes adapter/."),
    StepKind(name="rl.reward_model", config="components.rl.config:RewardModelConfig",
             run="components.rl.steps:run_reward_model", inputs=("model", "prefs"), num_cpus=0,
             description="Bradley-Terry reward model (sequence-classification head) on Ray Train; usable as a GRPO reward."),
]
