"""Two small real steps (stdlib docs → word statistics) for trying the engine in seconds."""
from flows.engine.registry import PII_SCRUBBED, StepKind

KINDS = [
    StepKind(name="demo.corpus", config="flows.demo_steps:DemoCorpusConfig", run="flows.demo_steps:corpus",
             description="The stdlib's pydoc topics as a JSONL corpus."),
    StepKind(name="demo.stats", config="flows.demo_steps:DemoStatsConfig", run="flows.demo_steps:stats",
             inputs=("docs",), requires_traits=(("docs", PII_SCRUBBED),),
             description="Word counts and the most frequent words of a corpus."),
]
