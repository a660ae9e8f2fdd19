"""The empirical floor scores each answer against another item's gold, for the same kind of question."""

from paralm.formats.predictions import PredictionRow
from paralm.runs.ablate.metrics import floor_rows, mean_scores


def _dp(i: int, asks: str, emotion: str, gender: str) -> PredictionRow:
    question = "Which emotion does the voice express?" if asks == "emotion" else "Is the speaker male or female?"
    reference = emotion if asks == "emotion" else gender
    return PredictionRow(key=f"k{i}", question=question, type="DP", reference=reference, answer=reference,
                         emotion=emotion, gender=gender, asks=asks, neutral_text=True)


ROWS = [_dp(0, "emotion", "sad", "male"), _dp(1, "gender", "sad", "female"), _dp(2, "emotion", "happy", "female"),
        _dp(3, "gender", "angry", "male"), _dp(4, "emotion", "angry", "female"), _dp(5, "gender", "happy", "male")]


def test_every_floor_row_keeps_what_its_question_asks_and_borrows_another_items_gold():
    floor = {r.key: r for r in floor_rows(ROWS)}
    for row in ROWS:
        borrowed = floor[row.key]
        assert borrowed.asks == row.asks and borrowed.answer == row.answer and borrowed.question == row.question
        assert (borrowed.reference, borrowed.emotion, borrowed.gender) != (row.reference, row.emotion, row.gender)


def test_the_dp_floor_is_the_share_of_answers_that_match_a_borrowed_emotion():
    # emotion items answer sad, happy, angry; shifted golds are happy, angry, sad: no match, floor 0
    assert mean_scores(ROWS)["all"]["dp_acc"]["mean"] == 1.0
    assert mean_scores(floor_rows(ROWS))["all"]["dp_acc"]["mean"] == 0.0
    same = [_dp(i, "emotion", "sad", "male") for i in range(3)]  # every clip sad: the floor is 1
    assert mean_scores(floor_rows(same))["all"]["dp_acc"]["mean"] == 1.0
