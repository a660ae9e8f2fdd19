"""Deterministic scorers: label extraction, accuracy / macro-F1 by hand, token F1."""

import pytest

from paralm.eval.labels import extract_label, infer_label_kind
from paralm.eval.scorers import exact_match, label_outcomes, normalize_answer, score_predictions, token_f1
from paralm.formats.predictions import PredictionRow


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("The speaker sounds angry.", "angry"),
        ("She is mad about it", "angry"),
        ("He's clearly furious and angry", "angry"),
        ("They sound joyful", "happy"),
        ("glad", "happy"),
        ("The speaker seems unhappy.", "sad"),
        ("She is afraid of the dark", "fearful"),
        ("scared", "fearful"),
        ("He sounds astonished!", "surprised"),
        ("A calm voice.", "neutral"),
        ("Disgusted by the food", "disgusted"),
        ("No, she is angry.", "angry"),
        ("She is not angry but sad.", "sad"),
        ("She isn't happy; she sounds disgusted.", "disgusted"),
        ("angry or sad, hard to say", None),
        ("not at all angry", None),
        ("I cannot tell from the audio.", None),
        ("", None),
    ],
)
def test_emotion_extraction_with_synonyms_negation_and_hedging(text, label):
    assert extract_label(text, "emotion") == label


@pytest.mark.parametrize(
    ("text", "label"),
    [("The speaker is a woman.", "female"), ("male voice", "male"), ("a man or a woman", None), ("not male", None)],
)
def test_gender_extraction(text, label):
    assert extract_label(text, "gender") == label


def test_label_kind_is_inferred_from_the_question():
    assert infer_label_kind("What is the speaker's gender?") == "gender"
    assert infer_label_kind("Is the speaker a man or woman?") == "gender"
    assert infer_label_kind("How does the speaker feel?") == "emotion"


def test_unknown_label_kind_names_the_choices():
    with pytest.raises(ValueError, match="emotion"):
        extract_label("x", "age")


def dp(i, reference, answer, **kw):
    return PredictionRow(key=f"k{i}", question=kw.pop("question", "How does the speaker feel?"), type="DP",
                         reference=reference, answer=answer, **kw)


def test_accuracy_and_macro_f1_match_hand_computation():
    rows = [
        dp(0, "angry", "She is angry."),          # angry -> angry   correct
        dp(1, "angry", "She sounds sad."),        # angry -> sad
        dp(2, "sad", "Sad."),                     # sad   -> sad     correct
        dp(3, "sad", "No idea."),                 # sad   -> none
        dp(4, "happy", "happy"),                  # happy -> happy   correct
        dp(5, "It is unclear", "angry", emotion="happy"),  # gold from the emotion field: happy -> angry
    ]
    result = score_predictions(rows)["labels"]["emotion"]
    # angry: tp1 fp1 fn1 -> F1 .5; sad: tp1 fp1 fn1 -> .5; happy: tp1 fp0 fn1 -> P1 R.5 F1 2/3
    assert result["n"] == 6
    assert result["accuracy"] == pytest.approx(3 / 6)
    assert result["macro_f1"] == pytest.approx((0.5 + 0.5 + 2 / 3) / 3)
    assert result["per_class_f1"] == pytest.approx({"angry": 0.5, "sad": 0.5, "happy": 2 / 3})
    assert result["none_rate"] == pytest.approx(1 / 6)


def test_unparseable_answers_count_as_wrong_never_dropped():
    rows = [dp(i, "angry", "hmm, hard to tell") for i in range(4)]
    result = score_predictions(rows)["labels"]["emotion"]
    assert (result["n"], result["accuracy"], result["macro_f1"], result["none_rate"]) == (4, 0.0, 0.0, 1.0)


def test_explicit_label_wins_and_gender_questions_score_separately():
    rows = [
        dp(0, "She is a woman", "a woman", question="What is the speaker's gender?"),
        dp(1, "whatever", "male", question="What is the speaker's gender?", label="female"),
        dp(2, "no label here", "angry"),  # no gold anywhere: counted as no_target, not scored
    ]
    summary = score_predictions(rows)
    assert summary["labels"]["gender"]["n"] == 2 and summary["labels"]["gender"]["accuracy"] == 0.5
    assert summary["labels"]["emotion"]["n"] == 0 and summary["dp_no_target"] == 1
    assert [o.correct for o in label_outcomes(rows)] == [True, False]


def test_invalid_explicit_label_is_an_error():
    with pytest.raises(ValueError, match="not a valid emotion label"):
        label_outcomes([dp(0, "x", "angry", label="bored")])


def test_token_f1_and_exact_match_use_squad_normalisation():
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    assert token_f1("the cat sat", "A cat sat down") == pytest.approx(2 * 1.0 * (2 / 3) / (1.0 + 2 / 3))
    assert token_f1("dog", "cat") == 0.0
    assert token_f1("", "") == 1.0 and token_f1("", "cat") == 0.0
    assert exact_match("The cat.", "cat") == 1.0


def test_score_predictions_groups_text_scores_by_type():
    rows = [
        PredictionRow(key="a", question="q", type="C", reference="red car", answer="red car"),
        PredictionRow(key="b", question="q", type="C", reference="red car", answer="blue bike"),
        PredictionRow(key="c", question="q", type="CP", reference="she is upset", answer="she is upset"),
    ]
    by_type = score_predictions(rows)["by_type"]
    assert by_type["C"] == {"n": 2, "token_f1": 0.5, "exact_match": 0.5}
    assert by_type["CP"]["token_f1"] == 1.0
    assert by_type["DP"] == {"n": 0, "token_f1": None, "exact_match": None}
