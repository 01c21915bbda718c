"""Accounting for a data step: documents in = kept + dropped by reason, with samples of what was dropped.

Every step of the stage writes one of these as ``report.json``; ``check()`` is the identity the
step asserts before it returns, so a count can never silently go missing.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Accounting:
    step: str
    num_in: int = 0
    num_kept: int = 0
    dropped_by_reason: Counter = field(default_factory=Counter)
    samples_by_reason: dict[str, list[dict]] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    max_samples_per_reason: int = 5
    sample_chars: int = 500
    # Applied to each sample's id and text before it is kept: report.json is an artifact (and goes to
    # MLflow), so a step that promises scrubbed output must not leak raw text through its samples.
    redact: Callable[[str], str] | None = None

    def keep(self, n: int = 1) -> None:
        self.num_in += n
        self.num_kept += n

    def drop(self, reason: str, doc_id: str = "", text: str = "", n: int = 1) -> None:
        self.num_in += n
        self.dropped_by_reason[reason] += n
        self.add_sample(reason, doc_id, text)

    def add_sample(self, reason: str, doc_id: str, text: str) -> None:
        samples = self.samples_by_reason.setdefault(reason, [])
        if len(samples) < self.max_samples_per_reason:
            if self.redact is not None:
                doc_id, text = self.redact(doc_id), self.redact(text)
            samples.append({"id": doc_id, "text": text[: self.sample_chars]})

    def add_block(self, summary: dict) -> None:
        """Merge a worker's ``block_summary`` (counts and a few samples of one block) into this report."""
        self.num_in += summary["num_in"]
        self.num_kept += summary["num_kept"]
        for reason, n in json.loads(summary["drops"]).items():
            self.dropped_by_reason[reason] += n
        for reason, samples in json.loads(summary["samples"]).items():
            for doc_id, text in samples:
                self.add_sample(reason, doc_id, text)

    @property
    def num_dropped(self) -> int:
        return sum(self.dropped_by_reason.values())

    def check(self) -> None:
        assert self.num_in == self.num_kept + self.num_dropped, (
            f"{self.step}: accounting broken: in={self.num_in} kept={self.num_kept} dropped={self.num_dropped}")

    def metrics(self) -> dict[str, float]:
        """Flat metrics for MLflow: headline counts first, then one ``dropped/<reason>`` per reason."""
        out = {"docs_kept": self.num_kept, "docs_in": self.num_in, "docs_dropped": self.num_dropped,
               "kept_fraction": self.num_kept / self.num_in if self.num_in else 0.0}
        out.update({f"dropped/{r.replace(':', '/')}": n for r, n in sorted(self.dropped_by_reason.items())})
        out.update({f"dropped_by_filter/{f}": n for f, n in sorted(self.dropped_by_filter().items())})
        return out

    def dropped_by_filter(self) -> Counter:
        """Drops per filter (the part of a reason before ':'), for one line per filter in dashboards."""
        by_filter: Counter = Counter()
        for reason, n in self.dropped_by_reason.items():
            by_filter[reason.split(":", 1)[0]] += n
        return by_filter

    def to_dict(self) -> dict:
        return {"step": self.step, "num_in": self.num_in, "num_kept": self.num_kept,
                "num_dropped": self.num_dropped, "dropped_by_filter": dict(sorted(self.dropped_by_filter().items())),
                "dropped_by_reason": dict(sorted(self.dropped_by_reason.items())),
                "samples_by_reason": dict(sorted(self.samples_by_reason.items())), **self.extra}

    def write(self, out_dir: str | Path) -> Path:
        self.check()
        path = Path(out_dir) / "report.json"
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False))
        return path


def block_summary(num_in: int, num_kept: int, drops: list[tuple[str, str, str]], max_samples: int,
                  sample_chars: int = 500) -> dict:
    """What a worker sends the driver about one block: counts by reason and the first few samples.

    ``drops`` is (reason, id, text) per dropped document. The driver merges these with
    ``Accounting.add_block`` in block order, so the report does not depend on the number of workers.
    """
    counts: Counter = Counter()
    samples: dict[str, list] = {}
    for reason, doc_id, text in drops:
        counts[reason] += 1
        kept = samples.setdefault(reason, [])
        if len(kept) < max_samples:
            kept.append([doc_id, text[:sample_chars]])
    return {"num_in": num_in, "num_kept": num_kept, "drops": json.dumps(dict(counts)), "samples": json.dumps(samples)}
