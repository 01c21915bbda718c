"""The base of every config in llmflow: unknown fields are errors, every field is described."""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError


class Config(BaseModel):
    """Strict pydantic model: ``extra="forbid"`` so a typo in a recipe is an error, not a no-op.

    ``RENAMED`` maps a field's old name to its new one: a recipe that still uses the old name
    fails with a message naming the new one, instead of a bare "extra inputs are not permitted".
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    RENAMED: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _reject_renamed(cls, data: Any) -> Any:
        if isinstance(data, dict):
            old = [k for k in cls.RENAMED if k in data]
            if old:
                # A typed error, so recipe validation can say "rename it" and show just the old keys.
                raise PydanticCustomError("renamed_field", "; ".join(
                    f"'{k}' was renamed to '{cls.RENAMED[k]}'" for k in old), {"old_keys": old})
        return data
