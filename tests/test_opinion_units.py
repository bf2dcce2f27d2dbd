"""Opinion units: the offline splitter, no-opinion detection, the LLM quote validator."""

from __future__ import annotations

import pytest

from miner.opinion_units import (QuoteError, is_no_opinion, split_aspect_spans, split_opinions, split_spans,
                                 validate_quoted_units)
from miner.records import Unit

# Real-looking answers (HALIE-style and interview-style) → the units a reader would expect.
SPLITS = [
    ("It was quick, but it made up the sources.", ["It was quick", "it made up the sources."]),
    ("It did not help direct me in any of the right ways.",
     ["It did not help direct me in any of the right ways."]),
    ("Sometimes it gave me the right answer. Other times it was completely off.",
     ["Sometimes it gave me the right answer.", "Other times it was completely off."]),
    ("Helpful for the easy clues although it struggled with anything tricky",
     ["Helpful for the easy clues", "it struggled with anything tricky"]),
    ("The answers were accurate; however the tone felt robotic.",
     ["The answers were accurate", "the tone felt robotic."]),
    ("it was helpful, while the interface was clunky", ["it was helpful", "the interface was clunky"]),
    ("Friendly and patient, though it kept repeating itself",
     ["Friendly and patient", "it kept repeating itself"]),
    ("It understood me whereas the other one never did", ["It understood me", "the other one never did"]),
    # fragments under 3 words join their neighbour; "yet" / "while" without a comma do not split
    ("Fast. Too wordy though.", ["Fast. Too wordy though."]),
    ("Friendly enough, though it kept repeating itself", ["Friendly enough, though it kept repeating itself"]),
    ("Not yet sure what I think of it", ["Not yet sure what I think of it"]),
    ("I waited a while for each answer", ["I waited a while for each answer"]),
    ("Great!!! Loved how it explained the clues\nbut the last hint was wrong",
     ["Great!!! Loved how it explained the clues", "the last hint was wrong"]),
    ("helpful, smart, quick", ["helpful, smart, quick"]),
    # a bare "however," opens the clause after it instead of trailing the one before
    ("It was fast, however, it made things up.", ["It was fast", "it made things up."]),
    ("The tone was warm and friendly, however, the facts were often wrong",
     ["The tone was warm and friendly", "the facts were often wrong"]),
    ("It was quick and it was accurate though", ["It was quick and it was accurate though"]),
]


@pytest.mark.parametrize("answer,expected", SPLITS)
def test_splitter_on_real_looking_answers(answer, expected):
    spans = split_spans(answer)
    assert [answer[s.start:s.end] for s in spans] == expected
    assert all(0 <= s.start < s.end <= len(answer) for s in spans)
    assert [s.start for s in spans] == sorted(s.start for s in spans)


# `miner eval opinions`' aspect-level units: one clause judging two aspects is cut where the second starts;
# a coordinated adjective pair ("quick and accurate") stays whole (the fragment is under 3 words).
ASPECT_SPLITS = [
    ("the service was inattentive (didn't bring us wine til our main course was already served",
     ["the service was inattentive", "(didn't bring us wine til our main course was already served"]),
    ("The pasta was great and the waiter was friendly", ["The pasta was great", "the waiter was friendly"]),
    ("It was quick and accurate", ["It was quick and accurate"]),
    ("It was quick, but it made up the sources.", ["It was quick", "it made up the sources."]),
    ("I liked the answers because they cited the sources", ["I liked the answers", "because they cited the sources"]),
]


@pytest.mark.parametrize("answer,expected", ASPECT_SPLITS)
def test_aspect_splitter(answer, expected):
    spans = split_aspect_spans(answer)
    assert [answer[s.start:s.end] for s in spans] == expected
    assert [s.start for s in spans] == sorted(s.start for s in spans)
    # it only ever cuts the clause units further
    clause = split_spans(answer, commas=True)
    assert all(any(c.start <= s.start and s.end <= c.end for c in clause) for s in spans)


def test_split_opinions_keeps_ids_and_skips_no_opinion_answers():
    units = [Unit("i1:0", "i1", "s", "m", 0, "Why was it helpful?", "It was quick, but it made up the sources, sadly.", "h"),
             Unit("i1:1", "i1", "s", "m", 1, "Rate it 1-5", "4/5", "h2")]
    opinions = split_opinions(units)
    assert [o.unit_id for o in opinions] == ["i1:0#0", "i1:0#1"]
    assert {(o.answer_unit_id, o.interview_id, o.question) for o in opinions} == {("i1:0", "i1", "Why was it helpful?")}
    assert [units[0].answer[o.start:o.end] for o in opinions] == [o.text for o in opinions]


NO_OPINION = ["4/5", "fairly satisfied, 3 out of 5", "3", "I'd give it a 4", "4 stars", "yes", "Nope.", "idk",
              "?", "??", "fine", "Fine.", "meh", "whatever", "good good", "lol", "ai lol", "yeah fine", "n/a", "",
              "ok", "dunno", "not sure", "very satisfied", "somewhere between 3 and 4", "8 out of 10"]
OPINION = ["fine for short clues but useless for long ones", "It was fast", "I'd give it a 4 because it was fast",
           "4/5, it made up a source once", "not helpful at all", "yes, it understood what I meant",
           "good at synonyms", "It gave wrong answers", "unhelpful", "confusing"]


@pytest.mark.parametrize("answer", NO_OPINION)
def test_no_opinion_answers(answer):
    assert is_no_opinion(answer)


@pytest.mark.parametrize("answer", OPINION)
def test_opinion_answers_are_kept(answer):
    assert not is_no_opinion(answer)


def test_quoted_units_are_validated_as_spans():
    answer = "It was  Quick,\nbut it made up the sources."
    spans = validate_quoted_units(answer, ["it was quick", "\"It made up the sources.\""], "i1:0")
    assert [answer[s.start:s.end] for s in spans] == ["It was  Quick", "it made up the sources"]
    with pytest.raises(QuoteError, match=r"i1:0.*quote 1.*not a span"):
        validate_quoted_units(answer, ["it was quick", "it invented the sources"], "i1:0")
    with pytest.raises(QuoteError, match="empty"):
        validate_quoted_units(answer, ["  "], "i1:0")
