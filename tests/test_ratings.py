"""Ratings: the explicit-rating parser, the offline estimator, and the one-call-per-interview LLM path."""

from __future__ import annotations

import pytest

from miner.ratings import asks_for_rating, parse_rating, question_scale

# (answer, scale the question asked for, answer to a rating question?, expected 1-5 score or None)
PHRASINGS = [
    ("4", 5, True, 4.0),
    ("4/5", 5, True, 4.0),
    ("4 / 5", 5, True, 4.0),
    ("four out of five", 5, True, 4.0),
    ("Four out of 5", 5, True, 4.0),
    ("3 out of five", 5, True, 3.0),
    ("a solid 8 out of 10", 5, True, 1 + 4 * 7 / 9),
    ("8/10", 5, True, 1 + 4 * 7 / 9),
    ("10/10 would use again", 5, True, 5.0),
    ("1/10", 5, True, 1.0),
    ("between 3 and 4", 5, True, 3.5),
    ("somewhere between three and four", 5, True, 3.5),
    ("3-4", 5, True, 3.5),
    ("3 or 4", 5, True, 3.5),
    ("3 to 4 out of 5", 5, True, 3.5),
    ("between 3 and 4 out of 5", 5, True, 3.5),
    ("I'd give it a 4", 5, True, 4.0),
    ("I'd rate it 2", 5, True, 2.0),
    ("probably 3", 5, True, 3.0),
    ("Five!", 5, True, 5.0),
    ("one", 5, True, 1.0),
    ("3.5", 5, True, 3.5),
    ("3,5", 5, True, 3.5),
    ("three and a half", 5, True, 3.5),
    ("4-ish", 5, True, 4.0),
    ("4 stars", 5, True, 4.0),
    ("five stars, it nailed it", 5, True, 5.0),
    ("2 stars", 5, False, 2.0),
    ("80%", 5, True, 1 + 4 * 0.8),
    ("100 percent", 5, True, 5.0),
    ("7", 10, True, 1 + 4 * 6 / 9),
    ("on a scale of 1 to 10, a 9", 5, True, 1 + 4 * 8 / 9),
    ("4, it did the job well", 5, True, 4.0),
    ("score: 2 - a bit disappointed", 5, True, 2.0),
    ("very satisfied", 5, True, 5.0),
    ("I'm pretty satisfied with it", 5, True, 4.0),
    ("not satisfied at all", 5, True, 1.0),
    ("neutral", 5, True, 3.0),
    ("so-so, middle of the road", 5, True, 3.0),
    ("a bit disappointed", 5, True, 2.0),
    ("Not very satisfied overall", 5, True, 2.0),
    ("I'm not very satisfied with it", 5, True, 2.0),
    ("wasn't happy", 5, True, None),
    ("I'd give it 4/5 overall", 5, False, 4.0),
    ("solid 9 out of 10", 5, False, 1 + 4 * 8 / 9),
    # Not ratings.
    ("I don't know", 5, True, None),
    ("", 5, True, None),
    ("It answered 2 of my 3 questions", 5, False, None),
    ("It asked me 3 times to rephrase", 5, False, None),
    ("available 24/7, that's nice", 5, False, None),
    ("I asked 2 questions and it got 1 right", 5, True, None),
    ("9", 5, True, None),  # off a 1-5 scale: ambiguous, not guessed
    ("it was great", 5, False, None),
    ("very satisfied with the code but the explanations were long and it kept repeating itself", 5, True, None),
    ("It was right 80% of the time", 5, False, None),
]


@pytest.mark.parametrize(("answer", "scale", "bare", "expected"), PHRASINGS)
def test_parse_rating_table(answer, scale, bare, expected):
    got = parse_rating(answer, scale=scale, bare=bare)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-6)


def test_parser_table_has_at_least_40_phrasings():
    assert len(PHRASINGS) >= 40


@pytest.mark.parametrize(("question", "scale", "asks"), [
    ("On a scale of 1 to 5, how satisfied are you with the assistant?", 5, True),
    ("How would you rate your satisfaction, from 1 (very dissatisfied) to 5 (very satisfied)?", 5, True),
    ("How satisfied were you with the interaction, on a 1-10 scale?", 10, True),
    ("Rate it on a five-point scale.", 5, True),
    ("Out of 10, how would you score the session?", 10, True),
    ("What could the assistant have done better?", None, False),
    ("Were you able to get what you needed out of the conversation?", None, False),
])
def test_question_scale_and_rating_questions(question, scale, asks):
    assert question_scale(question) == scale
    assert asks_for_rating(question) is asks
