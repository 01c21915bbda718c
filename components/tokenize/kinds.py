"""Step kinds of the tokenize stage (light: nothing heavy at import time).

tokenize.pack declares ``num_cpus=0``: it drives Ray Data, whose encode tasks need the CPUs.
"""
from flows.engine.registry import PII_SCRUBBED, StepKind

KINDS = [
    StepKind(name="tokenize.train", config="components.tokenize.config:TrainTokenizerConfig",
             run="components.tokenize.steps:run_train", inputs=("docs",),
             requires_traits=(("docs", PII_SCRUBBED),),
             description="Train a byte-level BPE with special tokens and a chat template on a docs artifact; "
                         "writes tokenizer/ (loads in transformers and vLLM as-is)."),
    StepKind(name="tokenize.pack", num_cpus=0, config="components.tokenize.config:PackConfig",
             run="components.tokenize.steps:run_pack", inputs=("docs", "tokenizer"),
             requires_traits=(("docs", PII_SCRUBBED),),
             description="Encode docs on Ray Data, append EOS, pack into fixed-length blocks; writes train/*.bin, "
                         "val/*.bin (np.memmap), manifest.json and a tokenizer/ copy."),
]
