"""Data stage configs: a bad value fails naming the field and the fix."""
from __future__ import annotations

import pytest

from components.data.config import CleanConfig, DedupConfig


def test_bad_config_values_name_the_field():
    with pytest.raises(ValueError, match="form"):
        CleanConfig(unicode={"form": "NFD"})
    with pytest.raises(ValueError, match="exact=false and near=false"):
        DedupConfig(exact=False, near=False)
