"""The labelled questions of ``rag.evaluate``: hand-written questions, each labelled with the
documents that answer it, read from a JSONL file (one ``{"question": ..., "doc_ids": [...]}`` a line).

``labelled_questions.jsonl`` beside this module is the shipped set: questions a user would ask
about Python, labelled with stdlib pydoc topic ids (``topics/<key>``, as ``data.corpus`` names
them): the topic about the question, and every topic that holds that topic's text verbatim
(``topics/compound`` holds every compound statement, ``topics/specialnames`` every special
method). Imports nothing from the package, so configs can validate a file at recipe time.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

BUILTIN = "builtin"
BUILTIN_QUESTIONS = Path(__file__).with_name("labelled_questions.jsonl")
_ROW_FORMAT = '{"question": "How do I leave a loop early?", "doc_ids": ["topics/break"]}'


@dataclass(frozen=True)
class LabelledQuestion:
    question: str
    doc_ids: tuple[str, ...]
    line: int  # in the questions file, for messages


def labelled_questions_path(value: str) -> Path:
    """The questions file a config's ``labelled_questions`` names (``builtin`` = the shipped set)."""
    return BUILTIN_QUESTIONS if value == BUILTIN else Path(value).expanduser()


def load_labelled_questions(path: str | Path) -> list[LabelledQuestion]:
    """Parse a JSONL file of ``{"question": str, "doc_ids": [str, ...]}``; one error lists every bad line."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"labelled questions file {path} not found; give a JSONL file with one {_ROW_FORMAT} "
                         f"per line, or '{BUILTIN}' for the shipped set")
    problems: list[str] = []
    questions: list[LabelledQuestion] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"line {n}: not JSON ({e.msg} at column {e.colno})")
            continue
        if not isinstance(row, dict):
            problems.append(f"line {n}: a JSON {type(row).__name__}, not an object")
            continue
        wrong = [f"unknown key {k!r}" for k in sorted(set(row) - {"question", "doc_ids"})]
        question, doc_ids = row.get("question"), row.get("doc_ids")
        if not isinstance(question, str) or not question.strip():
            wrong.append("'question' must be a non-empty string")
        if not (isinstance(doc_ids, list) and doc_ids and all(isinstance(d, str) and d for d in doc_ids)):
            wrong.append("'doc_ids' must be a non-empty list of document ids (strings)")
        elif len(set(doc_ids)) != len(doc_ids):
            wrong.append("'doc_ids' lists a document twice")
        if not wrong:
            key = " ".join(question.lower().split())
            if key in seen:
                wrong.append(f"same question as line {seen[key]}")
            seen.setdefault(key, n)
        if wrong:
            problems.append(f"line {n}: " + "; ".join(wrong))
        else:
            questions.append(LabelledQuestion(question=question.strip(), doc_ids=tuple(doc_ids), line=n))
    if problems:
        raise ValueError(f"labelled questions file {path}: {len(problems)} bad line(s):\n  " + "\n  ".join(problems)
                         + f"\nEach line must be one JSON object like {_ROW_FORMAT}")
    if not questions:
        raise ValueError(f"labelled questions file {path} holds no question; add lines like {_ROW_FORMAT}")
    return questions
