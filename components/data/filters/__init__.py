"""Cleaning filters: each a small class whose ``apply(text)`` returns a :class:`Verdict`.

A verdict keeps or drops the document with a reason (``"<filter>:<rule>"``), and may rewrite
its text (normalisation, PII scrubbing). Thresholds default to the published values (Gopher,
C4, FineWeb as implemented in DataTrove); where the built-in corpus of Python documentation
needs a different default, the config field's description says so and why.
"""
from components.data.filters.base import Filter, Verdict

__all__ = ["Filter", "Verdict"]
