"""components.artifacts: the one preference format, its reader's validation and its wrong-artifact errors."""
import json

import pytest

from components.artifacts import (
    PREFERENCES_FILE,
    PreferenceRow,
    read_preferences,
    write_preferences,
)


def test_preferences_round_trip_through_the_folder_and_the_file(tmp_path):
    rows = [PreferenceRow(prompt="2+2?", chosen="4", rejected="five", source="feedback", trace_ids=["tr-1", "tr-2"],
                          created_at="2026-01-01T00:00:00+00:00"),
            PreferenceRow(prompt="q", chosen="a", rejected="b", source="judge", trace_ids=["tr-3"], verdict="a")]
    path = write_preferences(tmp_path / "prefs", rows)
    assert path == tmp_path / "prefs" / PREFERENCES_FILE == tmp_path / "prefs" / "preferences.jsonl"
    assert read_preferences(tmp_path / "prefs") == rows == read_preferences(path)
    assert "verdict" not in json.loads(path.read_text().splitlines()[0])  # unset provenance is left out
    assert rows[0].pair() == {"prompt": "2+2?", "chosen": "4", "rejected": "five"}


def test_a_hand_made_file_needs_only_the_three_texts(tmp_path):
    (tmp_path / PREFERENCES_FILE).write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n\n')
    [row] = read_preferences(tmp_path)
    assert row.source == "external" and row.trace_ids == [] and row.created_at is None


def test_every_bad_line_is_reported_with_its_number(tmp_path):
    (tmp_path / PREFERENCES_FILE).write_text('{"prompt": "q", "chosen": "a"}\n'
                                             '{"prompt": "q", "chosen": "a", "rejected": "b"}\n'
                                             '{"prompt": "q", "chosen": "a", "rejected": "b", "source": "thumbs"}\n'
                                             'not json\n')
    with pytest.raises(ValueError) as e:
        read_preferences(tmp_path)
    msg = str(e.value)
    assert "3 problem(s)" in msg and ":1: rejected" in msg and ":3: source" in msg and ":4:" in msg and ":2:" not in msg


def test_a_wrong_artifact_names_the_kind_that_makes_a_prefs_one(tmp_path):
    (tmp_path / "prompts.jsonl").write_text("{}\n")  # an sft.dataset folder given as `prefs`
    with pytest.raises(FileNotFoundError, match=r"not a prefs artifact.*prompts\.jsonl.*eval\.feedback_prefs"):
        read_preferences(tmp_path)
    (tmp_path / "pairs.jsonl").write_text("{}\n")
    with pytest.raises(FileNotFoundError, match="pairs.jsonl is the old name"):
        read_preferences(tmp_path)
    with pytest.raises(FileNotFoundError, match="eval.feedback_prefs"):
        read_preferences(tmp_path / "missing")


@pytest.mark.parametrize("config", ["DPOConfig", "RewardModelConfig"])
def test_rl_configs_read_the_one_file_name_and_reject_the_old_key(config):
    import components.rl.config as rl_config

    cls = getattr(rl_config, config)
    assert "pairs_file" not in cls.model_fields
    with pytest.raises(ValueError, match="'pairs_file' was removed.*preferences.jsonl"):
        cls.model_validate({"pairs_file": "pairs.jsonl"})
