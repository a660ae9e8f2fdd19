"""The predictions JSONL format and the crash-safe JSONL helpers under it."""

import json

import pytest

from paralm.formats.jsonl import JsonlAppender, read_jsonl, write_jsonl_atomic
from paralm.formats.predictions import PredictionRow, read_predictions, write_predictions


def row(**kw):
    base = dict(key="k1", question="How does she feel?", type="DP", reference="Angry.", answer="angry")
    return PredictionRow(**{**base, **kw})


def test_rows_round_trip_with_optional_and_unknown_fields(tmp_path):
    rows = [row(emotion="angry", neutral_text=True, system="implicit", seed=3, audio="a.flac",
                extra={"wer": 0.1}), row(key="k2", type="C")]
    write_predictions(tmp_path / "p.jsonl", rows)
    back = read_predictions(tmp_path / "p.jsonl")
    assert back == rows
    first = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])
    assert first["wer"] == 0.1 and "label" not in first  # unset fields are left out


def test_item_id_is_stable_and_differs_per_question():
    assert row().item_id == row(answer="other", system="x").item_id
    assert row().item_id != row(question="Why is she angry?").item_id
    assert row().item_id.startswith("k1::")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"key": "a", "question": "q", "type": "XX", "reference": "r", "answer": "a"}, "not one of"),
        ({"key": "a", "question": "q", "type": "C", "reference": "r"}, "missing required"),
        ({"key": "a", "question": "q", "type": "C", "reference": "r", "answer": 3}, "must be a string"),
        ({"key": "a", "question": "q", "type": "DP", "reference": "r", "answer": "a", "label_kind": "age"},
         "label_kind"),
    ],
)
def test_bad_rows_raise_with_file_and_line(tmp_path, line, message):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"key": "ok", "question": "q", "type": "C", "reference": "r", "answer": "a"})
                    + "\n" + json.dumps(line) + "\n")
    with pytest.raises(ValueError, match=rf"p.jsonl:2: .*{message}"):
        read_predictions(path)


def test_duplicate_items_are_rejected(tmp_path):
    write_predictions(tmp_path / "p.jsonl", [row(), row(answer="again")])
    with pytest.raises(ValueError, match="duplicate item"):
        read_predictions(tmp_path / "p.jsonl")


def test_truncated_last_line_is_skipped_only_when_allowed(tmp_path):
    path = tmp_path / "log.jsonl"
    with JsonlAppender(path, truncate=True) as log:
        log.append({"i": 0})
        log.append({"i": 1})
    with path.open("a") as f:
        f.write('{"i": 2, "half')
    assert [obj["i"] for _, obj in read_jsonl(path, allow_truncated_tail=True)] == [0, 1]
    with pytest.raises(ValueError, match="log.jsonl:3"):
        list(read_jsonl(path))


def test_atomic_write_leaves_no_temp_files(tmp_path):
    write_jsonl_atomic(tmp_path / "x.jsonl", [{"a": 1}])
    write_jsonl_atomic(tmp_path / "x.jsonl", [{"a": 2}])
    assert [p.name for p in tmp_path.iterdir()] == ["x.jsonl"]
    assert [obj for _, obj in read_jsonl(tmp_path / "x.jsonl")] == [{"a": 2}]
