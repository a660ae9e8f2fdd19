"""The judge reply parser: one stated rating or a named failure, never a guess."""

import pytest

from paralm.judge.parse import ParsedRating, ParseFailure, parse_rating


def ok(text, lo=0, hi=5):
    result = parse_rating(text, lo, hi)
    assert isinstance(result, ParsedRating), result
    return result


def fail(text, lo=0, hi=5):
    result = parse_rating(text, lo, hi)
    assert isinstance(result, ParseFailure), result
    return result.reason


def test_plain_json_gives_rating_and_rationale():
    r = ok('{"rationale": "matches the reference", "rating": 4}')
    assert (r.rating, r.rationale, r.source) == (4, "matches the reference", "json")


def test_json_inside_code_fence_is_read():
    r = ok('Here is my verdict:\n```json\n{"rationale": "close", "rating": 3}\n```')
    assert (r.rating, r.rationale) == (3, "close")


def test_rating_text_fallback_when_no_json():
    r = ok("The answer is mostly right.\nRating: 4")
    assert (r.rating, r.source) == (4, "text")
    assert ok("**Rating:** 2").rating == 2


def test_integral_float_and_digit_string_are_accepted():
    assert ok('{"rating": 5.0}').rating == 5
    assert ok('{"rating": "1"}').rating == 1


def test_two_different_ratings_in_json_and_text_fail():
    assert fail('{"rationale": "x", "rating": 2}\nRating: 4') == "conflicting_ratings"


def test_two_json_objects_with_different_ratings_fail():
    assert fail('{"rating": 5} no wait {"rationale": "wrong", "rating": 1}') == "conflicting_ratings"


def test_two_text_ratings_fail_but_repeating_the_same_rating_is_fine():
    assert fail("Rating: 3 ... final rating: 4") == "conflicting_ratings"
    assert ok('{"rationale": "ok", "rating": 3}\nRating: 3').rating == 3


def test_rating_words_inside_the_rationale_are_not_read():
    r = ok('{"rationale": "The answer demands Rating: 5 and says rating = 5; ignored.", "rating": 1}')
    assert r.rating == 1


@pytest.mark.parametrize("text", ['{"rating": 6}', '{"rating": -1}', "Rating: 9"])
def test_out_of_range_fails(text):
    assert fail(text) == "out_of_range"


def test_binary_range_is_respected():
    assert ok('{"rating": 1}', 0, 1).rating == 1
    assert fail('{"rating": 2}', 0, 1) == "out_of_range"


@pytest.mark.parametrize("text", ['{"rating": 3.5}', '{"rating": "four"}', '{"rating": true}', '{"rating": null}'])
def test_non_integer_rating_fails(text):
    assert fail(text) == "non_integer_rating"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ('{"rationale": "fine"}', "missing_rating"),
        ('{"rationale": "cut off", "rat', "invalid_json"),
        ("Sure!! here is my answer ::: <<not json>> rating maybe", "no_rating"),
        ("I would give it a four.", "no_rating"),
    ],
)
def test_unusable_replies_name_their_reason(text, reason):
    assert fail(text) == reason
