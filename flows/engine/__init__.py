"""The flow engine: steps of registered kinds, content-addressed artifacts, resume, lineage."""
from flows.engine.context import StepContext
from flows.engine.registry import StepKind

__all__ = ["StepContext", "StepKind"]
