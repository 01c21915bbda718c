"""Recipe validation: every problem at once, overrides, shipped recipes, described fields."""
from __future__ import annotations

import pytest

from flows.engine import registry
from flows.engine.address import package_hash
from flows.engine.runner import plan_flow
from flows.engine.store import ArtifactStore
from flows.recipe import RecipeError, load_recipe, parse_recipe, shipped_recipes


def test_bad_recipe_lists_every_problem(diamond):
    diamond["steps"]["a"]["config"]["value"] = "not a number"
    diamond["steps"]["b"]["config"]["typo"] = 3
    diamond["steps"]["left"]["needs"] = {"a": "missing_step"}
    diamond["steps"]["right"]["uses"] = "no.such.kind"
    diamond["extra_top_level"] = True
    with pytest.raises(RecipeError) as e:
        parse_recipe(diamond, "bad.yaml")
    paths = {p.path for p in e.value.problems}
    assert {"steps.a.config.value", "steps.b.config.typo", "steps.left.needs.a", "steps.right.uses",
            "extra_top_level"} <= paths
    text = str(e.value)
    assert "5 problem" in text or "6 problem" in text
    assert all(p.fix for p in e.value.problems)


def test_missing_required_input_and_cycle(diamond):
    del diamond["steps"]["right"]["needs"]
    diamond["steps"]["a"] = {"uses": "test.add", "needs": {"a": "join"}}  # a → left → join → a
    with pytest.raises(RecipeError) as e:
        parse_recipe(diamond)
    whys = " | ".join(p.why for p in e.value.problems)
    assert "requires input 'a'" in whys and "cycle" in whys


def test_overrides_set_nested_fields_and_are_validated(diamond):
    r = parse_recipe(diamond, overrides=["steps.a.config.value=7", "ray.num_cpus=3"])
    assert r.configs["a"].value == 7 and r.model.ray.num_cpus == 3
    with pytest.raises(RecipeError) as e:
        parse_recipe(diamond, overrides=["steps.a.config.value=x", "novalue"])
    assert {p.path for p in e.value.problems} >= {"steps.a.config.value", "--set"}


def test_topological_order(diamond):
    r = parse_recipe(diamond)
    pos = {n: i for i, n in enumerate(r.order)}
    assert pos["a"] < pos["left"] < pos["join"] and pos["b"] < pos["right"] < pos["join"]
    assert r.downstream({"left"}) == {"left", "join"}


@pytest.mark.parametrize("name", shipped_recipes())
def test_every_shipped_recipe_validates(name):
    r = load_recipe(name)
    assert r.order


def test_every_kind_config_field_is_described_and_strict():
    for kind in registry.kinds().values():
        model = kind.config_model()
        assert model.model_config.get("extra") == "forbid", kind.name
        for fname, f in model.model_fields.items():
            assert f.description, f"{kind.name}.{fname} has no description"
        model()  # every field has a tiny-CPU default


def test_changing_one_field_changes_exactly_the_affected_addresses(diamond, tmp_path):
    store = ArtifactStore(str(tmp_path))
    before = {n: s.address for n, s in plan_flow(parse_recipe(diamond), store).items()}
    after = {n: s.address for n, s in plan_flow(parse_recipe(diamond, overrides=["steps.b.config.value=11"]),
                                                 store).items()}
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {"b", "right", "join"}


def test_code_version_tracks_source(tmp_path, monkeypatch):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    h1 = package_hash("mypkg")
    package_hash.cache_clear()
    (pkg / "__init__.py").write_text("X = 2\n")
    assert package_hash("mypkg") != h1
    package_hash.cache_clear()
