"""data.clean and data.dedup on Ray Data, end to end on real stdlib docs with planted problems."""
from __future__ import annotations

import json

import pytest

from components.artifacts import Docs
from components.data.config import CleanConfig, CorpusConfig, DedupConfig
from components.data.dedup import find_duplicate_clusters
from components.data.steps import run_clean, run_corpus, run_dedup
from flows.engine.context import StepContext

pytestmark = pytest.mark.integration

GERMAN = ("Der Interpreter liest eine Datei und führt die Anweisungen der Reihe nach aus. Jedes Modul hat seinen "
          "eigenen Namensraum, und die Namen auf der obersten Ebene werden zu Attributen des Moduls. ") * 4


class TagRecorder:
    """A step logger that keeps the tags a step sets (metrics and artifacts go to the artifact only)."""

    def __init__(self):
        self.tags: dict[str, str] = {}

    def log_metrics(self, metrics, step=None, ts_ms=None):
        pass

    def log_artifact(self, path, artifact_path=None):
        pass

    def set_tags(self, tags):
        self.tags.update(tags)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, ray_local):
    """corpus (stdlib topics + planted files) -> clean -> dedup, each step's output dir and metrics."""
    from pydoc_data.topics import topics

    root = tmp_path_factory.mktemp("data_pipeline")
    user = root / "user"
    user.mkdir()
    base = topics["class"]
    (user / "exact_copy.txt").write_text(base)
    words = base.split()
    words[40:43] = ["altered", "words", "here"]
    (user / "near_copy.txt").write_text(" ".join(words[:len(words)]).replace(" ", " ", 1))
    (user / "german.txt").write_text(GERMAN)
    (user / "pii.txt").write_text(topics["import"] + "\nReport bugs to maintainer.name@example.com or call "
                                  "(415) 555-2671; the mirror is 8.8.4.4.\n")
    (user / "short.txt").write_text("This is a short note about the import system. Mail short.note@example.org.")
    (user / "bad.txt").write_bytes(b"\xff\xfe broken")

    out = {}
    # The corpus's own PII pass is off so that raw text reaches data.clean: its PII filter and the
    # scrubbing of its report samples are what this pipeline tests (tests/data/test_corpus.py tests
    # the corpus's pass).
    corpus = CorpusConfig(include_stdlib_modules=False, paths=[str(user)], scrub={"pii": {"enabled": False}})
    steps = [("corpus", run_corpus, corpus, {}),
             ("clean", run_clean, CleanConfig(batch_size=32, samples_per_reason=100), {"docs": "corpus"}),
             ("dedup", run_dedup, DedupConfig(batch_size=32), {"docs": "clean"})]
    for name, fn, cfg, needs in steps:
        ctx = StepContext.for_test(root / name, {k: root / v for k, v in needs.items()}, name=name)
        ctx.logger = TagRecorder()
        out[name] = (root / name, fn(ctx, cfg))
        out[f"{name}:tags"] = ctx.logger.tags
    return out


def _report(path):
    return json.loads((path / "report.json").read_text())


def test_every_step_keeps_the_accounting_identity(pipeline):
    previous_kept = None
    for name in ("corpus", "clean", "dedup"):
        report = _report(pipeline[name][0])
        assert report["num_in"] == report["num_kept"] + sum(report["dropped_by_reason"].values())
        assert report["num_kept"] == len(list(Docs.read(pipeline[name][0]).rows()))
        if previous_kept is not None:
            assert report["num_in"] == previous_kept, f"{name} lost documents between steps"
        previous_kept = report["num_kept"]
    assert _report(pipeline["corpus"][0])["dropped_by_reason"] == {"corpus:invalid_utf8": 1}


def test_clean_and_dedup_tag_the_nodes_whose_workers_wrote_their_shards(pipeline):
    import pyarrow.parquet as pq
    import ray

    here = ray.get_runtime_context().get_node_id()  # one node: every block's writer ran on it
    for name, upstream in (("clean", "corpus"), ("dedup", "clean")):
        tags = pipeline[f"{name}:tags"]
        rows = [pq.ParquetFile(p).metadata.num_rows for p in Docs.read(pipeline[upstream][0]).shards]
        num_blocks = sum(-(-n // 32) for n in rows)  # batch_size=32 rows per block, cut per shard
        assert tags["llmflow.data.writer_nodes"] == here, name
        assert json.loads(tags["llmflow.data.blocks_by_node"]) == {here: num_blocks}, name
        assert tags["llmflow.data.blocks_sent_back"] == "0", name  # a local root: every writer writes in place


def test_clean_drops_planted_bad_docs_with_reasons_and_samples(pipeline):
    path, metrics = pipeline["clean"]
    report = _report(path)
    reasons = report["dropped_by_reason"]
    assert reasons.get("langid:not_en") == 1
    assert reasons.get("gopher_quality:short_doc", 0) >= 1
    assert [s["id"] for s in report["samples_by_reason"]["langid:not_en"]] == ["user/german.txt"]
    kept = {d["id"]: d["text"] for d in Docs.read(path).rows()}
    assert report["num_kept"] >= 0.6 * report["num_in"], "defaults must keep most of the stdlib docs"
    pii = kept["user/pii.txt"]
    assert "<EMAIL>" in pii and "<PHONE>" in pii and "<IP_ADDRESS>" in pii and "example.com" not in pii
    assert report["rewrites"]["pii_email"] == 1 and metrics["rewrites/pii_phone"] == 1
    # Dropped documents never reach the PII filter (it runs last); their samples are scrubbed anyway.
    short = [s for ss in report["samples_by_reason"].values() for s in ss if s["id"] == "user/short.txt"]
    assert "<EMAIL>" in short[0]["text"] and "short.note@" not in json.dumps(report["samples_by_reason"])
    assert metrics["docs_kept"] == report["num_kept"]
    assert report["dropped_by_filter"]["langid"] == reasons["langid:not_en"] + reasons.get("langid:low_score", 0)
    assert 0.6 < metrics["kept_chars_fraction"] < 1.0
    assert report["num_chars_kept"] == sum(len(t) for t in kept.values())


def test_dedup_removes_planted_duplicates_and_matches_python_api(pipeline):
    clean_dir = pipeline["clean"][0]
    path, metrics = pipeline["dedup"]
    report = _report(path)
    clusters = [json.loads(line) for line in (path / "clusters.jsonl").read_text().splitlines()]
    planted = [c for c in clusters if "user/exact_copy.txt" in c["members"]]
    assert len(planted) == 1 and planted[0]["survivor"] == "topics/class"
    assert {"user/exact_copy.txt", "user/near_copy.txt"} <= set(planted[0]["members"])
    kept_ids = {d["id"] for d in Docs.read(path).rows()}
    assert "topics/class" in kept_ids and not {"user/exact_copy.txt", "user/near_copy.txt"} & kept_ids
    assert report["dropped_by_reason"].get("dedup:near_duplicate", 0) + \
        report["dropped_by_reason"].get("dedup:exact_duplicate", 0) == report["num_dropped"] >= 2
    expected = find_duplicate_clusters(list(Docs.read(clean_dir).rows()))
    assert [(c["survivor"], c["members"], c["kind"]) for c in clusters] == \
        [(c.survivor, c.members, c.kind) for c in expected]
    assert metrics["num_clusters"] == len(expected)


def _shard_bytes(path):
    return {p.name: p.read_bytes() for p in sorted((path / "docs").glob("part-*.parquet"))}


def test_clean_shards_do_not_depend_on_the_number_of_workers(pipeline, tmp_path):
    corpus = pipeline["corpus"][0]
    outs = []
    for workers in (1, 2, 4):
        ctx = StepContext.for_test(tmp_path / f"w{workers}", {"docs": corpus}, name="clean")
        run_clean(ctx, CleanConfig(batch_size=16, max_workers=workers))
        outs.append(tmp_path / f"w{workers}")
    first = _shard_bytes(outs[0])
    assert len(first) >= 2, "several blocks, so several workers really write"
    for other in outs[1:]:
        assert _shard_bytes(other) == first
        a, b = _report(outs[0]), _report(other)
        a.pop("elapsed_s"), b.pop("elapsed_s")
        assert a == b


def test_dedup_keeps_the_far_end_of_a_chain_and_any_worker_count_writes_the_same(tmp_path, ray_local):
    """A~B~C with A!~C (verified Jaccard), D an exact copy of C, among real stdlib docs, on Ray:
    B and D go, A and C stay, and 1, 2 and 4 workers write byte-identical shards and clusters."""
    from pydoc_data.topics import topics

    from tests.data.test_dedup import chain_docs

    records = [{**d, "id": f"chain/{d['id']}"} for d in chain_docs()]
    records += [{"id": f"topics/{k}", "text": topics[k]} for k in sorted(topics)[:30]]
    src = tmp_path / "src"
    Docs.write(sorted(records, key=lambda r: r["text"][:20]), src, docs_per_shard=9)
    outs = []
    for workers in (1, 2, 4):
        ctx = StepContext.for_test(tmp_path / f"w{workers}", {"docs": src}, name="dedup")
        run_dedup(ctx, DedupConfig(batch_size=4, num_partitions=3, max_workers=workers))
        outs.append(tmp_path / f"w{workers}")
    kept = {d["id"] for d in Docs.read(outs[0]).rows()}
    assert {"chain/A", "chain/C"} <= kept and not {"chain/B", "chain/D"} & kept
    assert len(kept) == len(records) - 2
    clusters = {c["survivor"]: c for c in map(json.loads, (outs[0] / "clusters.jsonl").read_text().splitlines())}
    assert clusters["chain/C"]["similarity"] == {"chain/D": 1.0} and clusters["chain/C"]["kind"] == "exact"
    assert 0.8 <= clusters["chain/A"]["similarity"]["chain/B"] < 1.0 and clusters["chain/A"]["kind"] == "near"
    report = _report(outs[0])
    assert report["min_similarity_to_survivor"] >= 0.8 and report["dropped_by_reason"] == {
        "dedup:exact_duplicate": 1, "dedup:near_duplicate": 1}
    for other in outs[1:]:
        assert _shard_bytes(other) == _shard_bytes(outs[0])
        assert (other / "clusters.jsonl").read_bytes() == (outs[0] / "clusters.jsonl").read_bytes()
