"""Step kinds of the serving stage (light: no Ray/vLLM imports)."""
from flows.engine.registry import StepKind

KINDS = [
    StepKind(
        name="serve.deploy",
        config="serve.llm.config:ServeDeployConfig",
        run="serve.steps:run_deploy",
        inputs=("model", "draft?", "adapter?", "gate?"),
        description="Start the OpenAI-compatible Ray Serve + vLLM app from the run's model (+ draft, LoRA) "
                    "and write endpoint.json; with a `gate` input (eval.offline) the adapter is served only "
                    "if the gate promoted it, else the champion's adapter or the base model",
        # The step only drives Serve; the replica it starts needs the CPU.
        num_cpus=0,
        cacheable=False,
        long_lived=True,
    ),
]
