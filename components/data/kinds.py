"""Step kinds of the data stage (light: no Ray, pyarrow or numpy at import time).

data.clean and data.dedup pass the ``pii_scrubbed`` trait of their input on (they rewrite or
drop documents, never add raw text); data.corpus and data.clean also say in their configs
whether they scrub themselves (``output_traits``).

The Ray Data steps declare ``num_cpus=0``: their function only drives Ray Data and streams
results to disk, so it must not hold a CPU the ``map_batches`` tasks need (on 2 cores, half).
"""
from flows.engine.registry import StepKind

KINDS = [
    StepKind(name="data.corpus", config="components.data.config:CorpusConfig",
             run="components.data.steps:run_corpus", inputs=(),
             description="Read the built-in stdlib-docs corpus and/or folders of .txt/.jsonl/.parquet into "
                         "docs/part-*.parquet, Unicode-normalised and PII-scrubbed as read, counting unreadable, "
                         "empty and oversized inputs."),
    StepKind(name="data.clean", num_cpus=0, config="components.data.config:CleanConfig",
             run="components.data.steps:run_clean", inputs=("docs",), passes_traits_from=("docs",),
             description="Unicode, Gopher quality + repetition, C4, FineWeb, language-id filters and PII "
                         "scrubbing on Ray Data; report.json has counts and samples per drop reason."),
    StepKind(name="data.dedup", num_cpus=0, config="components.data.config:DedupConfig",
             run="components.data.steps:run_dedup", inputs=("docs",), passes_traits_from=("docs",),
             description="Exact + MinHash LSH near-duplicate removal on Ray Data (map_batches signatures, "
                         "groupby buckets, connected components); clusters.jsonl lists every cluster."),
]
