"""Judge summaries: unjudged rows are excluded from means, groups by type and emotion, row format."""

import pytest

from paralm.formats.predictions import PredictionRow
from paralm.judge.results import JudgedRow, read_judged, write_judged
from paralm.judge.rubrics import get_rubric
from paralm.judge.summary import render_markdown, summarize

RUBRIC = get_rubric("reference_match")


def judged(i, qtype, emotion, rating=None, reason=None, flags=(), neutral=None):
    pred = PredictionRow(key=f"k{i}", question="q", type=qtype, reference="r", answer="a", emotion=emotion,
                         neutral_text=neutral)
    if rating is None:
        return JudgedRow(prediction=pred, status="unjudged", reason=reason, injection_flags=list(flags))
    return JudgedRow(prediction=pred, status="judged", rating=rating, score=RUBRIC.score(rating), rationale="ok",
                     injection_flags=list(flags), prompt_tokens=10, completion_tokens=2)


ROWS = [
    judged(0, "C", "angry", 5, neutral=True),
    judged(1, "C", "sad", 3, neutral=False),
    judged(2, "CP", "angry", None, "api:timeout"),
    judged(3, "DP", "angry", 1, flags=["rating_text"]),
    judged(4, "DP", None, None, "parse:conflicting_ratings"),
]


def test_unjudged_rows_are_excluded_from_means_and_reported():
    s = summarize(ROWS, RUBRIC, "judge-a")
    assert (s["n"], s["judged"], s["success_rate"]) == (5, 3, 0.6)
    assert s["score"] == pytest.approx((100 + 60 + 20) / 3)  # not (100+60+0+20+0)/5
    assert s["unjudged_reasons"] == {"api:timeout": 1, "parse:conflicting_ratings": 1}
    assert [u["item_id"] for u in s["unjudged_items"]] == [ROWS[2].item_id, ROWS[4].item_id]
    assert s["score_ci"]["low"] <= s["score"] <= s["score_ci"]["high"]


def test_groups_by_type_emotion_and_neutrality():
    s = summarize(ROWS, RUBRIC, "judge-a")
    assert s["by_type"]["CP"] == {"n": 1, "judged": 0, "success_rate": 0.0, "score": None, "mean_rating": None}
    assert s["by_type"]["C"]["score"] == 80.0
    assert s["by_emotion"]["angry"]["n"] == 3 and s["by_emotion"]["unknown"]["n"] == 1
    assert s["by_neutral_text"]["neutral_text"]["score"] == 100.0
    assert s["injection"]["flagged"] == 1 and s["injection"]["score_unflagged"] == 80.0
    assert s["tokens"] == {"prompt": 30, "completion": 6}
    assert "by_system" not in s


def test_markdown_states_the_exclusion_and_the_tables():
    md = render_markdown(summarize(ROWS, RUBRIC, "judge-a", {"requests_sent": 7, "cost_usd": 0.01}))
    assert "judged 3 of 5" in md and "excluded from every mean" in md
    assert "| CP | 1 | 0 | 0.000 | - |" in md and "7 requests" in md


def test_judged_rows_round_trip_and_reject_inconsistent_status(tmp_path):
    write_judged(tmp_path / "judged.jsonl", ROWS)
    assert read_judged(tmp_path) == ROWS
    with pytest.raises(ValueError, match="judged row needs a rating"):
        JudgedRow(prediction=ROWS[0].prediction, status="judged", rating=None, reason="api:timeout")
    with pytest.raises(ValueError, match="status"):
        JudgedRow(prediction=ROWS[0].prediction, status="maybe")
