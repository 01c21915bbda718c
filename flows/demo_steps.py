"""The demo steps behind ``flows/recipes/demo.yaml``."""
from __future__ import annotations

import collections
import json
import re

from pydantic import Field

from flows.engine.config import Config
from flows.engine.context import StepContext
from flows.engine.registry import PII_SCRUBBED, step_kind


class DemoCorpusConfig(Config):
    max_docs: int = Field(default=0, ge=0, description="Keep at most this many topics (0 = all).")

    def output_traits(self) -> set[str]:
        # Python's language reference holds no personal data (tests/data/test_pii.py checks it).
        return {PII_SCRUBBED}


class DemoStatsConfig(Config):
    top_k: int = Field(default=20, ge=1, description="How many of the most frequent words to report.")
    lowercase: bool = Field(default=True, description="Count words case-insensitively.")


@step_kind("demo.corpus", description="The stdlib's pydoc topics as a JSONL corpus.")
def corpus(ctx: StepContext, config: DemoCorpusConfig) -> dict[str, float]:
    from pydoc_data.topics import topics

    names = sorted(topics)[: config.max_docs or None]
    with open(ctx.output / "docs.jsonl", "w") as f:
        f.writelines(json.dumps({"id": name, "text": topics[name]}) + "\n" for name in ctx.progress(names, desc="topics"))
    return {"num_docs": len(names)}


@step_kind("demo.stats", inputs=("docs",), requires_traits=(("docs", PII_SCRUBBED),),
           description="Word counts and the most frequent words of a corpus.")
def stats(ctx: StepContext, config: DemoStatsConfig) -> dict[str, float]:
    counts: collections.Counter[str] = collections.Counter()
    num_docs = 0
    for line in open(ctx.input("docs") / "docs.jsonl"):
        text = json.loads(line)["text"]
        counts.update(re.findall(r"[A-Za-z_]+", text.lower() if config.lowercase else text))
        num_docs += 1
    report = {"num_docs": num_docs, "num_words": sum(counts.values()), "vocab": len(counts),
              "top": counts.most_common(config.top_k)}
    (ctx.output / "stats.json").write_text(json.dumps(report, indent=2))
    ctx.log_metrics({"num_words": report["num_words"], "vocab": report["vocab"]})
    ctx.log_artifact(ctx.output / "stats.json")
    return {"num_words": report["num_words"], "vocab": report["vocab"]}
