"""The base of every config in llmflow: unknown fields are errors, every field is described."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Config(BaseModel):
    """Strict pydantic model: ``extra="forbid"`` so a typo in a recipe is an error, not a no-op."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())
