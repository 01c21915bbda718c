"""Recipe validation: every problem at once, overrides, shipped recipes, traits (kinds: test_kinds.py)."""
from __future__ import annotations

import pytest

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


def test_unscrubbed_documents_fail_validation_naming_step_input_upstream_and_fix():
    with pytest.raises(RecipeError) as e:
        load_recipe("e2e", ["steps.corpus.config.scrub.pii.enabled=false", "steps.clean.config.pii.enabled=false"])
    problems = {p.path: p for p in e.value.problems}
    # Every consumer of documents, directly or through clean and dedup, is listed at once.
    assert set(problems) == {"steps.index.needs.docs", "steps.instructions.needs.docs", "steps.rag_eval.needs.docs",
                             "steps.tokenizer.needs.docs", "steps.tokens.needs.docs"}
    index = problems["steps.index.needs.docs"]
    assert index.value == "corpus" and "rag.index" in index.why and "'corpus' (data.corpus)" in index.why
    assert "steps.corpus.config.scrub.pii" in index.fix and "steps.corpus.config.pii_known_clean: true" in index.fix
    assert "passed on through 'clean' -> 'dedup'" in problems["steps.tokenizer.needs.docs"].why


def test_pii_known_clean_is_the_explicit_opt_out():
    r = load_recipe("e2e", ["steps.corpus.config.scrub.pii.enabled=false", "steps.corpus.config.pii_known_clean=true"])
    assert r.configs["corpus"].pii_known_clean


def test_clean_scrubs_what_the_corpus_did_not_but_only_downstream_of_it():
    """clean's PII pass makes dedup's output scrubbed (the tokenizer passes); the index reading the
    raw corpus still fails."""
    with pytest.raises(RecipeError) as e:
        load_recipe("e2e", ["steps.corpus.config.scrub.phones=false", "steps.corpus.config.scrub.pii.phones=false"])
    assert "steps.corpus.config.scrub.phones" in {p.path for p in e.value.problems}  # a typo is still a typo
    with pytest.raises(RecipeError) as e:
        load_recipe("e2e", ["steps.corpus.config.scrub.pii.phones=false"])
    assert {p.path for p in e.value.problems} == {"steps.index.needs.docs", "steps.instructions.needs.docs",
                                                  "steps.rag_eval.needs.docs"}
    with pytest.raises(RecipeError) as e:
        load_recipe("sweep", ["steps.corpus.config.scrub.pii.enabled=false"])  # tokenizer reads the corpus
    assert {p.path for p in e.value.problems} == {"steps.tokenizer.needs.docs", "steps.tokens.needs.docs"}
    with pytest.raises(RecipeError) as e:
        load_recipe("pretrain-1b-gpu", ["steps.corpus.config.scrub.pii.enabled=false",
                                        "steps.clean.config.pii.enabled=false"])
    assert "steps.clean.config.pii.enabled" not in str(e.value)  # the fix points at the corpus, the source
    load_recipe("pretrain-1b-gpu", ["steps.corpus.config.scrub.pii.enabled=false"])


def test_a_kind_outside_the_data_stage_gets_a_generic_fix():
    """The mechanism is declarative: any kind may require or pass on a trait; a producer that
    says nothing about it gets a fix naming the trait."""
    from tests.flows.kinds_for_tests import ensure_registered

    ensure_registered()
    raw = {"name": "t", "steps": {"src": {"uses": "test.emit"}, "idx": {"uses": "rag.index", "needs": {"docs": "src"}}}}
    with pytest.raises(RecipeError) as e:
        parse_recipe(raw)
    (p,) = e.value.problems
    assert p.path == "steps.idx.needs.docs" and "'src' (test.emit)" in p.why and "'pii_scrubbed'" in p.fix


def test_changing_one_field_changes_exactly_the_affected_addresses(diamond, tmp_path):
    store = ArtifactStore(str(tmp_path))
    before = {n: s.address for n, s in plan_flow(parse_recipe(diamond), store).items()}
    after = {n: s.address for n, s in plan_flow(parse_recipe(diamond, overrides=["steps.b.config.value=11"]),
                                                 store).items()}
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {"b", "right", "join"}
