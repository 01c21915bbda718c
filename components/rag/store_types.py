"""What every Qdrant store backend shares: vector names, the search hit, the errors."""
from __future__ import annotations

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
