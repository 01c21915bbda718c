"""What every Qdrant store backend shares: vector names, the search hit, the errors."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

DENSE, SPARSE = "dense", "sparse"


class IndexLockedError(RuntimeError):
    """An embedded index is open for writing by another process."""


class StoreUnavailableError(RuntimeError):
    """The Qdrant server did not answer (down, unreachable, or slower than the timeout)."""


@dataclass
class Hit:
    id: str
    score: float                 # the ranking score of the query (cosine, or RRF when fused)
    payload: dict[str, Any]
    dense: list[float] | None = field(default=None, repr=False)


class PayloadScan:
    """What a store derives from its ``payloads`` scroll; each backend implements ``payloads`` only."""

    def payloads(self, fields: list[str] | bool = True) -> Iterator[tuple[str, dict]]:
        """``(id, payload)`` of every point (payload cut to ``fields``; False = none), page by page."""
        raise NotImplementedError

    def point_ids(self) -> set[str]:
        """Every point id in the collection (a scroll without payloads or vectors)."""
        return {i for i, _ in self.payloads(False)}

    def doc_hashes(self) -> dict[str, str]:
        """``doc_id → hash`` (the indexed text's content hash) of every document with a point in the collection."""
        return {str(p["doc_id"]): str(p.get("hash", "")) for _, p in self.payloads(["doc_id", "hash"])}
