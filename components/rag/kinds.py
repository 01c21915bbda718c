"""Step kinds of the RAG stage (imports nothing heavy)."""
from flows.engine.registry import PII_SCRUBBED, StepKind

KINDS = [
    StepKind(
        name="rag.index", config="components.rag.config:IndexConfig", run="components.rag.steps:run_index",
        inputs=("docs",), requires_traits=(("docs", PII_SCRUBBED),),
        description="Chunk documents by tokens, embed (all-MiniLM-L6-v2, Ray Data) + BM25-style sparse "
                    "vectors, upsert into Qdrant (local mode in the artifact, or QDRANT_URL) idempotently."),
    StepKind(
        name="rag.evaluate", config="components.rag.config:EvaluateConfig", run="components.rag.steps:run_evaluate",
        inputs=("index", "docs"), requires_traits=(("docs", PII_SCRUBBED),),
        description="Derive labelled queries from the corpus; recall@k, MRR, nDCG@10 for dense vs hybrid search."),
]
