"""data.corpus: the stdlib corpus and user folders, with every bad input counted under a reason."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.artifacts import Docs
from components.data.config import CorpusConfig
from components.data.stdlib_corpus import module_document, pydoc_topics
from components.data.steps import run_corpus
from flows.engine.context import StepContext

PROSE = "A paragraph of ordinary text about Python modules and functions. " * 5


@pytest.fixture()
def planted(tmp_path):
    """A folder with 5 good documents and 9 bad inputs of 7 kinds."""
    d = tmp_path / "user_data"
    (d / "sub").mkdir(parents=True)
    (d / "good.txt").write_text(PROSE)
    (d / "sub" / "good2.txt").write_text(PROSE + " More.")
    (d / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))           # invalid_utf8
    (d / "empty.txt").write_text("   \n\t")                                      # empty
    (d / "huge.txt").write_text("x" * 5000)                                      # too_large (max_chars=4000)
    lines = [json.dumps({"text": PROSE, "id": "j1"}), "{not json", json.dumps({"body": "no text field"}), "",
             json.dumps({"text": PROSE + " again", "id": "j1"})]                 # bad json, missing field, dup id
    (d / "records.jsonl").write_bytes(("\n".join(lines) + "\n").encode() + b'{"text": "\xff\xfe"}\n')  # invalid utf8
    pq.write_table(pa.table({"text": [PROSE + " p1", None], "title": ["t1", "t2"]}), d / "table.parquet")  # 1 missing
    (d / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet")             # unreadable_file
    (d / "notes.csv").write_text("a,b\n1,2\n")                                   # unsupported_file
    return d


def test_accounting_identity_with_planted_bad_files(tmp_path, planted):
    ctx = StepContext.for_test(tmp_path / "out")
    cfg = CorpusConfig(include_stdlib_topics=False, include_stdlib_modules=False, paths=[str(planted)],
                       max_chars=4000)
    metrics = run_corpus(ctx, cfg)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["dropped_by_reason"] == {
        "corpus:bad_jsonl_record": 1, "corpus:duplicate_id": 1, "corpus:empty": 1, "corpus:invalid_utf8": 2,
        "corpus:missing_text_field": 2, "corpus:too_large": 1, "corpus:unreadable_file": 1,
        "corpus:unsupported_file": 1}
    assert report["num_kept"] == 4
    assert report["num_in"] == report["num_kept"] + sum(report["dropped_by_reason"].values()) == 14
    assert set(report["samples_by_reason"]) == set(report["dropped_by_reason"])
    docs = list(Docs.read(tmp_path / "out").rows())
    assert sorted(d["id"] for d in docs) == ["j1", "user_data/good.txt", "user_data/sub/good2.txt", "user_data/table.parquet#0"]
    assert all(set(d) == {"id", "text", "source", "title"} and all(isinstance(v, str) for v in d.values()) for d in docs)
    assert metrics["docs_kept"] == 4 and metrics["dropped/corpus/invalid_utf8"] == 2
    logged = [json.loads(line) for line in (tmp_path / "out" / "_metrics.jsonl").read_text().splitlines()]
    assert logged[-1]["metrics"]["docs_in"] == 14


def test_stdlib_corpus_is_real_documentation(tmp_path):
    ctx = StepContext.for_test(tmp_path / "out")
    metrics = run_corpus(ctx, CorpusConfig(max_docs=100, docs_per_shard=32))
    docs = list(Docs.read(tmp_path / "out").rows())
    assert len(docs) == 100 == metrics["docs_kept"]
    assert len(list((tmp_path / "out" / "docs").glob("part-*.parquet"))) == 4
    assert {d["source"] for d in docs} == {"stdlib:pydoc_topics", "stdlib:module_docstrings"}
    assert any("namespace" in d["text"] for d in docs)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["stopped_at_max_docs"] is True
    assert report["num_in"] == report["num_kept"] + report["num_dropped"]


def test_topics_and_module_documents():
    topics = list(pydoc_topics())
    assert len(topics) > 50 and topics[0]["id"].startswith("topics/")
    text = module_document('"""Mod doc."""\ndef f(a, b=1):\n    """Add things."""\nclass C:\n    """A class."""\n'
                           '    def m(self):\n        """A method."""\n    def _p(self):\n        """hidden"""\n', "m")
    assert text == "Mod doc.\n\nf(a, b=1)\nAdd things.\n\nclass C\nA class.\n\nC.m(self)\nA method."


def test_config_needs_a_source_and_rejects_unknown_fields():
    with pytest.raises(ValueError, match="no source"):
        CorpusConfig(include_stdlib_topics=False, include_stdlib_modules=False)
    with pytest.raises(ValueError, match="extra"):
        CorpusConfig(pathz=["x"])


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        run_corpus(StepContext.for_test(tmp_path / "o"), CorpusConfig(paths=[str(tmp_path / "nope")]))
    assert not (tmp_path / "o" / "docs").exists()


def _scrub_folder(root):
    d = root / "tickets"
    d.mkdir()
    (d / "ticket.txt").write_text(PROSE + "Reach me at ada.lovelace@analytical-engines.org or (415) 555-2671.")
    records = [{"id": "call +44 20 7946 0958", "title": "Refund to DE89 3704 0044 0532 0130 00",
                "text": PROSE + "Card 4111 1111 1111 1111 was charged twice.\r\n"},
               {"id": "call +44 20 7946 0957", "title": "dup after scrubbing", "text": PROSE}]
    lines = [json.dumps(r) for r in records] + ["{broken ada.lovelace@analytical-engines.org"]
    (d / "records.jsonl").write_text("\n".join(lines) + "\n")
    (d / "huge.txt").write_text("Mail ada.lovelace@analytical-engines.org " + "x" * 5000)
    return d, ("ada.lovelace@analytical-engines.org", "555-2671", "7946 0958", "0532 0130", "4111 1111")


def test_corpus_is_scrubbed_as_read_and_holds_no_raw_pii(tmp_path):
    """Text, titles, ids and report samples (of oversized and broken records) are all scrubbed."""
    folder, canaries = _scrub_folder(tmp_path)
    ctx = StepContext.for_test(tmp_path / "out")
    metrics = run_corpus(ctx, CorpusConfig(include_stdlib_topics=False, include_stdlib_modules=False,
                                           paths=[str(folder)], max_chars=4000))
    out = tmp_path / "out"
    docs = {d["id"]: d for d in Docs.read(out).rows()}
    everything = json.dumps(list(docs.values())) + (out / "report.json").read_text()
    assert not [c for c in canaries if c in everything]
    assert sorted(docs) == ["call <PHONE>#1", "call <PHONE>#2", "tickets/ticket.txt"]  # ids stay unique
    assert "<EMAIL>" in docs["tickets/ticket.txt"]["text"] and "<PHONE>" in docs["tickets/ticket.txt"]["text"]
    assert docs["call <PHONE>#1"]["title"] == "Refund to <IBAN>"
    assert "<CREDIT_CARD>" in docs["call <PHONE>#1"]["text"] and "\r" not in docs["call <PHONE>#1"]["text"]
    # ticket.txt and huge.txt (scrubbed before the size rule); the broken record's sample is not counted
    assert metrics["rewrites/pii_email"] == 2 and metrics["rewrites/pii_card"] == 1
    report = json.loads((out / "report.json").read_text())
    assert report["dropped_by_reason"] == {"corpus:bad_jsonl_record": 1, "corpus:too_large": 1}
    assert "<EMAIL>" in report["samples_by_reason"]["corpus:too_large"][0]["text"]


def test_scrub_off_keeps_raw_text_and_is_not_pii_scrubbed(tmp_path):
    from flows.engine.registry import PII_SCRUBBED

    folder, canaries = _scrub_folder(tmp_path)
    config = CorpusConfig(include_stdlib_topics=False, include_stdlib_modules=False, paths=[str(folder)],
                          max_chars=4000, scrub={"pii": {"enabled": False}})
    run_corpus(StepContext.for_test(tmp_path / "out"), config)
    assert canaries[0] in json.dumps(list(Docs.read(tmp_path / "out").rows()))
    assert config.output_traits() == set() and CorpusConfig().output_traits() == {PII_SCRUBBED}
    assert CorpusConfig(scrub={"pii": {"ibans": False}}).output_traits() == set()  # a partial pass is not scrubbed
    assert config.model_copy(update={"pii_known_clean": True}).output_traits() == {PII_SCRUBBED}


def test_compressed_text_and_jsonl_are_read_and_corrupt_ones_counted(tmp_path):
    import gzip

    import zstandard

    d = tmp_path / "packed"
    d.mkdir()
    lines = "".join(json.dumps({"id": f"r{i}", "text": f"{PROSE} record {i}"}) + "\n" for i in range(3))
    (d / "a.jsonl.gz").write_bytes(gzip.compress(lines.encode()))
    (d / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(
        lines.replace('"r', '"z').encode()))
    (d / "note.txt.gz").write_bytes(gzip.compress((PROSE + " gz").encode()))
    (d / "note2.txt.zst").write_bytes(zstandard.ZstdCompressor().compress((PROSE + " zst").encode()))
    (d / "broken.jsonl.gz").write_bytes(gzip.compress(lines.encode())[:30])      # truncated: unreadable_file
    (d / "bad.txt.zst").write_bytes(b"not zstd at all")                           # unreadable_file
    (d / "table.parquet.gz").write_bytes(b"")                                     # unsupported_file
    ctx = StepContext.for_test(tmp_path / "out")
    run_corpus(ctx, CorpusConfig(include_stdlib_topics=False, include_stdlib_modules=False, paths=[str(d)]))
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    docs = {doc["id"]: doc for doc in Docs.read(tmp_path / "out").rows()}
    assert sorted(docs) == ["packed/note.txt.gz", "packed/note2.txt.zst", "r0", "r1", "r2", "z0", "z1", "z2"]
    assert docs["packed/note2.txt.zst"]["text"].endswith(" zst") and docs["packed/note.txt.gz"]["title"] == "note"
    assert docs["z2"]["text"].endswith("record 2")
    assert report["dropped_by_reason"] == {"corpus:unreadable_file": 2, "corpus:unsupported_file": 1}
