"""The formats one stage hands another, each with one typed writer and one reader.

Preferences (the ``prefs`` artifact): ``preferences.jsonl``, one ``PreferenceRow`` per line —
``prompt``/``chosen``/``rejected`` plus where the pair came from. The online loop writes it
(``eval.feedback_prefs``, ``OnlineEvaluator.export_preferences``, ``POST /online/export``);
``rl.dpo`` and ``rl.reward_model`` read it. A hand-made dataset needs only the three text fields.

    write_preferences("prefs/", [PreferenceRow(prompt="2+2?", chosen="4", rejected="five")])
    rows = read_preferences("prefs/")      # the artifact folder or the file itself
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PREFERENCES_FILE = "preferences.jsonl"
PREFERENCES_MADE_BY = ("eval.feedback_prefs (or the online loop's OnlineEvaluator.export_preferences / "
                       "POST /online/export)")


class PreferenceRow(BaseModel):
    """One preference pair and its provenance."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description="The user's prompt (redacted when it comes from live traffic).")
    chosen: str = Field(description="The preferred response.")
    rejected: str = Field(description="The dispreferred response to the same prompt.")
    source: Literal["feedback", "judge", "external"] = Field(
        "external", description="feedback: a thumbs-up and a thumbs-down answer to the same prompt; judge: a "
                                "shadow/A-B comparison the judge decided; external: written outside llmflow.")
    trace_ids: list[str] = Field(
        default_factory=list, description="MLflow trace ids of the requests behind the pair: feedback → "
                                          "[chosen's, rejected's]; judge → [the shadowed request's].")
    verdict: Literal["a", "b"] | None = Field(None, description="judge: which answer (a = primary) won.")
    created_at: str | None = Field(None, description="When the pair was exported (ISO 8601, UTC).")

    def pair(self) -> dict[str, str]:
        """The three fields training uses."""
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}


def write_preferences(out_dir: str | Path, rows: Iterable[PreferenceRow]) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / PREFERENCES_FILE
    with open(path, "w") as f:
        f.writelines(row.model_dump_json(exclude_none=True) + "\n" for row in rows)
    return path


def read_preferences(artifact: str | Path) -> list[PreferenceRow]:
    """Rows of a ``prefs`` artifact folder (or of its ``preferences.jsonl``); every line is validated."""
    path = Path(artifact)
    if path.is_dir():
        path = path / PREFERENCES_FILE
    if not path.is_file():
        folder = path.parent
        found = sorted(p.name for p in folder.iterdir())[:8] if folder.is_dir() else []
        hint = " (pairs.jsonl is the old name of this file: rename it)" if "pairs.jsonl" in found else ""
        raise FileNotFoundError(f"{folder} is not a prefs artifact: it has no {PREFERENCES_FILE}{hint}; found "
                                f"{found or 'nothing'}. Make one with {PREFERENCES_MADE_BY}")
    rows, problems = [], []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(PreferenceRow.model_validate_json(line))
        except ValidationError as e:
            problems += [f"{path}:{i}: {'.'.join(map(str, err['loc'])) or 'row'}: {err['msg']}" for err in e.errors()]
    if problems:
        raise ValueError(f"{len(problems)} problem(s) in {path}; each line must be a JSON object with prompt, "
                         "chosen, rejected (and optionally source, trace_ids, verdict, created_at):\n  "
                         + "\n  ".join(problems[:20]))
    return rows
