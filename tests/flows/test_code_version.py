"""Code versions come from the import closure of a kind's modules: editing any module a step
reaches through imports (directly or transitively) changes its code version; editing an
unrelated module does not. No hand-kept dependency list can drift."""
from __future__ import annotations

import pytest

from flows.engine import code_version as cv
from flows.engine import registry


@pytest.fixture
def fake_project(tmp_path, monkeypatch):
    root = tmp_path / "fakeproj"
    (root / "stage").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "stage/__init__.py": "",
        "stage/steps.py": "from fakeproj.stage.helper import helper\n\ndef run(ctx, config):\n"
                          "    from fakeproj import lazy  # function-level imports count too\n    return helper()\n",
        "stage/config.py": "X = 1\n",
        "stage/helper.py": "from . import deep\n\ndef helper():\n    return deep.VALUE\n",
        "stage/deep.py": "VALUE = 1\n",
        "lazy.py": "Y = 1\n",
        "unrelated.py": "Z = 1\n",
    }
    for name, text in files.items():
        (root / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    _forget_fakeproj()  # find_spec imports parent packages: drop a previous test's copy
    yield root
    _forget_fakeproj()
    cv.import_closure.cache_clear()
    cv._source_file.cache_clear()


def _forget_fakeproj() -> None:
    import sys

    for name in [m for m in sys.modules if m.split(".")[0] == "fakeproj"]:
        del sys.modules[name]


def _version(root) -> str:
    cv.import_closure.cache_clear()
    cv._source_file.cache_clear()
    mods = set(cv.import_closure("fakeproj.stage.steps", ("fakeproj",)))
    mods |= set(cv.import_closure("fakeproj.stage.config", ("fakeproj",)))
    return cv.modules_hash(tuple(mods))


def test_closure_follows_direct_transitive_relative_and_lazy_imports(fake_project):
    mods = cv.import_closure("fakeproj.stage.steps", ("fakeproj",))
    assert set(mods) == {"fakeproj", "fakeproj.stage", "fakeproj.stage.steps", "fakeproj.stage.helper",
                         "fakeproj.stage.deep", "fakeproj.lazy"}


@pytest.mark.parametrize("edited,changes", [("stage/deep.py", True), ("stage/helper.py", True), ("lazy.py", True),
                                            ("stage/config.py", True), ("unrelated.py", False)])
def test_editing_a_reachable_module_changes_the_version_and_nothing_else(fake_project, edited, changes):
    before = _version(fake_project)
    path = fake_project / edited
    path.write_text(path.read_text() + "\n# edited\n")
    assert (_version(fake_project) != before) is changes


def test_the_kinds_that_drifted_before_now_hash_what_they_use():
    kinds = registry.kinds()

    def modules(name):
        k = kinds[name]
        return set(cv.kind_modules(k.modules, k.code))

    assert "components.models.presets" in modules("distill.draft")  # was missing from its code= list
    assert "components.data.shards" in modules("tokenize.pack")  # ditto
    assert "components.models.presets" not in modules("data.clean")  # unrelated code stays out
    assert not any(m.startswith("flows.engine") for m in modules("serve.smoke"))  # the engine has ENGINE_VERSION
