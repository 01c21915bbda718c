"""The data and tokenize step kinds are registered, light to import, and their configs validate."""
from __future__ import annotations

import subprocess
import sys

import pytest

from flows.engine import registry

KIND_NAMES = ["data.corpus", "data.clean", "data.dedup", "tokenize.train", "tokenize.pack"]


@pytest.mark.parametrize("name", KIND_NAMES)
def test_kind_is_registered_with_a_described_default_config(name):
    kind = registry.get(name)
    model = kind.config_model()
    model()  # tiny-CPU defaults validate
    for field_name, field in model.model_fields.items():
        assert field.description, f"{name}.{field_name} has no description"
    assert callable(kind.run_fn())


def test_kind_and_config_modules_import_nothing_heavy():
    code = ("import sys, components.data.kinds, components.tokenize.kinds, components.data.config, "
            "components.tokenize.config; heavy = [m for m in ('ray', 'torch', 'pyarrow', 'numpy', 'transformers', "
            "'tokenizers', 'vllm') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"light modules imported: {out}"


def test_bad_config_values_name_the_field():
    clean = registry.get("data.clean").config_model()
    with pytest.raises(ValueError, match="form"):
        clean(unicode={"form": "NFD"})
    dedup = registry.get("data.dedup").config_model()
    with pytest.raises(ValueError, match="exact=false and near=false"):
        dedup(exact=False, near=False)
