"""Step kinds that complete the serving stack in a flow (light: no Ray/vLLM imports)."""
from flows.engine.registry import StepKind

KINDS = [
    StepKind(name="serve.rag", config="serve.stack_config:RagServeConfig", run="serve.stack_steps:run_rag",
             inputs=("endpoint", "index"), num_cpus=0, cacheable=False, long_lived=True,
             description="Start the RAG router (hybrid search, citations, online evaluation) at /rag in front "
                         "of the LLM app that serve.deploy started; writes endpoint.json."),
    StepKind(name="serve.smoke", config="serve.stack_config:SmokeConfig", run="serve.stack_steps:run_smoke",
             inputs=("endpoint", "rag"), num_cpus=0, cacheable=False, long_lived=True,
             description="Query the live stack with the openai client (plain, streaming, adapter, RAG with "
                         "citations, off-topic, feedback); fails if any answer has the wrong shape."),
]
