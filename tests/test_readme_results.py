"""README's benchmark table quotes benchmarks/RESULTS.md: every number agrees with a recorded row.

A README row is traceable when every number in its ours / baseline / ratio cells appears in
RESULTS.md rows that come from one benchmark (the same ``*.py`` script in the command cell, or the
same command for the few rows without a script, such as ``make run``). Rows in RESULTS.md whose command cell says "same" belong
to the row above. Fast, no network: it only reads the two files.
"""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
RESULTS = REPO / "benchmarks" / "RESULTS.md"

# A number not glued to a word ("p50", "top-10" are labels, not values); a sign only when it
# starts the token, so "3.9–5.8" (en dash) is two positive numbers and "−24%" is negative.
NUMBER = re.compile(r"(?<![\w.\-])([+\-−]?)(\d[\d,]*(?:\.\d+)?)(?!\d)")
SCRIPT = re.compile(r"(\w+\.py)\b")


def numbers(text: str) -> set[float]:
    out = set()
    for sign, digits in NUMBER.findall(text):
        value = float(digits.replace(",", ""))
        out.add(-value if sign in ("-", "−") else value)
    return out


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def is_table_row(line: str) -> bool:
    return line.startswith("|") and not re.fullmatch(r"\|[\s|:-]+\|?", line.strip())


def results_rows(text: str) -> list[tuple[str, str]]:
    """(benchmark key, row text) for every data row of RESULTS.md's tables."""
    rows, key = [], None
    for line in text.splitlines():
        if not is_table_row(line):
            continue
        row = cells(line)
        if row[0] == "metric":
            continue
        assert len(row) == 8, f"RESULTS.md row must have 8 cells (metric … date), has {len(row)}: {line}"
        command = row[5]
        script = SCRIPT.search(command)
        if script:
            key = script.group(1)
        elif command.strip("()` ").startswith("same") or command.startswith("any of the above") or not command:
            pass  # the row above's benchmark
        else:
            key = command
        rows.append((key, line))
    return rows


def readme_rows(text: str) -> list[list[str]]:
    section = text.split("\n## Benchmarks", 1)[1].split("\n## ", 1)[0]
    rows = [cells(line) for line in section.splitlines() if is_table_row(line)]
    assert rows and rows[0] == ["what", "ours", "baseline", "ratio"], f"unexpected README table header {rows[:1]}"
    return rows[1:]


def test_readme_table_has_rows():
    rows = readme_rows(README.read_text())
    assert len(rows) >= 5
    for row in rows:
        assert len(row) == 4, f"README benchmark row must have 4 cells: {row}"
        assert numbers(" ".join(row[1:])), f"README row quotes no number: {row}"


def test_every_readme_row_matches_one_benchmark_in_results():
    by_key: dict[str, set[float]] = {}
    for key, line in results_rows(RESULTS.read_text()):
        by_key.setdefault(key, set()).update(numbers(line))
    unmatched = []
    for row in readme_rows(README.read_text()):
        wanted = numbers(" ".join(row[1:]))
        if not any(wanted <= found for found in by_key.values()):
            best = max(by_key.items(), key=lambda kv: len(wanted & kv[1]))
            unmatched.append(f"{row[0]!r}: {sorted(wanted - best[1])} not in RESULTS.md rows of {best[0]}")
    assert not unmatched, "README benchmark rows not traceable to RESULTS.md:\n" + "\n".join(unmatched)


def test_number_parsing():
    assert numbers("3.9–5.8× / 1,484 ms") == {3.9, 5.8, 1484.0}
    assert numbers("0.76 (−24%), +30 ms, p50 @conc 8, top-10") == {0.76, -24.0, 30.0, 8.0}
