"""Readers for user folders of ``.txt``, ``.jsonl`` and ``.parquet`` files; ``.txt`` and ``.jsonl`` may be
gzip- or zstd-compressed (``.txt.gz``, ``.jsonl.zst``, ...), as most public corpora ship. Compressed
JSONL is decompressed as a stream, line by line, so a file's size does not set the reader's memory.

A reader never raises on bad input: every file or record it cannot turn into a document is
reported to the accounting under a reason (``unreadable_file``, ``invalid_utf8``,
``bad_jsonl_record``, ``missing_text_field``, ``unsupported_file``), so nothing vanishes silently.
"""
from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from components.data.accounting import Accounting

SUFFIXES = (".txt", ".jsonl", ".parquet")
COMPRESSIONS = (".gz", ".zst")
READABLE = (*SUFFIXES, *(f"{s}{c}" for s in (".txt", ".jsonl") for c in COMPRESSIONS))


def kind_of(path: Path) -> tuple[str, str]:
    """(format suffix, compression suffix or ""): ``a.jsonl.zst`` -> (".jsonl", ".zst")."""
    suffixes = path.suffixes[-2:]
    if len(suffixes) == 2 and suffixes[1] in COMPRESSIONS:
        return suffixes[0], suffixes[1]
    return path.suffix, ""


@contextmanager
def open_binary(path: Path, compression: str):
    """A binary stream of the file's decompressed bytes."""
    if compression == ".gz":
        with gzip.open(path, "rb") as f:
            yield f
    elif compression == ".zst":
        import zstandard

        with open(path, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as reader:
            yield io.BufferedReader(reader)
    else:
        with open(path, "rb") as f:
            yield f


def _corrupt_errors() -> tuple[type[BaseException], ...]:
    """What a truncated or corrupt file raises: OSError / EOFError (gzip), ZstdError, ArrowInvalid (ValueError)."""
    import zstandard

    return OSError, EOFError, ValueError, zstandard.ZstdError


def _doc(doc_id: str, text: str, source: str, title: str) -> dict:
    return {"id": doc_id, "text": text, "source": source, "title": title}


def read_txt(path: Path, rel: str, acc: Accounting, compression: str = "") -> Iterator[dict]:
    """One document per file: a .txt file is one text (split large corpora into files upstream)."""
    with open_binary(path, compression) as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        acc.drop("corpus:invalid_utf8", rel, f"{e}")
        return
    yield _doc(rel, text, f"file:{rel}", path.name.split(".")[0] if compression else path.stem)


def read_jsonl(path: Path, rel: str, acc: Accounting, text_field: str, compression: str = "") -> Iterator[dict]:
    with open_binary(path, compression) as f:
        for i, line in enumerate(f):
            doc_id = f"{rel}#{i}"
            if not line.strip():
                continue  # blank lines are formatting, not records
            try:
                rec = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError as e:
                acc.drop("corpus:invalid_utf8", doc_id, str(e))
                continue
            except json.JSONDecodeError as e:
                acc.drop("corpus:bad_jsonl_record", doc_id, f"{e}: {line[:200]!r}")
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get(text_field), str):
                acc.drop("corpus:missing_text_field", doc_id, str(line[:200]))
                continue
            yield _doc(str(rec.get("id", doc_id)), rec[text_field], f"file:{rel}", str(rec.get("title", "")))


def read_parquet(path: Path, rel: str, acc: Accounting, text_field: str) -> Iterator[dict]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if text_field not in table.column_names:
        acc.drop("corpus:missing_text_field", rel, f"columns: {table.column_names}", n=table.num_rows or 1)
        return
    cols = {c: table.column(c).to_pylist() for c in ("id", "title") if c in table.column_names}
    for i, text in enumerate(table.column(text_field).to_pylist()):
        doc_id = str(cols["id"][i]) if "id" in cols else f"{rel}#{i}"
        if not isinstance(text, str):
            acc.drop("corpus:missing_text_field", doc_id, repr(text)[:200])
            continue
        title = cols["title"][i] if "title" in cols else ""
        yield _doc(doc_id, text, f"file:{rel}", str(title or ""))


def read_folder(folder: str | Path, acc: Accounting, text_field: str = "text") -> Iterator[dict]:
    """All documents under ``folder`` (recursively, in path order); ids are relative paths (+ ``#row``)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ValueError(f"data.corpus: paths entry {str(folder)!r} is not a directory; "
                         "give folders holding .txt, .jsonl or .parquet files")
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f"{root.name}/{path.relative_to(root).as_posix()}"
        if path.name.startswith("."):
            continue  # hidden files (.DS_Store, editor swap files) are not data
        fmt, compression = kind_of(path)
        if fmt not in SUFFIXES or (compression and fmt == ".parquet"):
            acc.drop("corpus:unsupported_file", rel, f"suffix {''.join(path.suffixes[-2:])!r} is not one of {READABLE}")
            continue
        try:
            if fmt == ".txt":
                yield from read_txt(path, rel, acc, compression)
            elif fmt == ".jsonl":
                yield from read_jsonl(path, rel, acc, text_field, compression)
            else:
                yield from read_parquet(path, rel, acc, text_field)
        except _corrupt_errors() as e:  # pyarrow raises ArrowInvalid (a ValueError) on corrupt files
            acc.drop("corpus:unreadable_file", rel, f"{type(e).__name__}: {e}")
