"""Quality verdicts on crafted low-effort interviews, and on the sample study's planted ones."""

from __future__ import annotations

import pytest

from miner.ingest import to_interview
from miner.quality import QualityOptions, is_low_effort, judge_quality
from miner.ratings import AnchorSentiment
from miner.sample import generate_sample
from miner.units import split_units

QUESTIONS = ("How well did the assistant understand what you asked?", "Did the answers meet your needs?",
             "How accurate was the information?", "What could it do better?", "Overall, what did you think?")
GOOD_ANSWERS = ("It understood me right away, even my vague follow-up question.",
                "Yes, it gave me a working recipe and a shopping list, which was what I wanted.",
                "Mostly accurate, though one cooking time looked too short.",
                "It could ask a clarifying question before assuming I have an oven.",
                "Helpful and friendly, I would use it again.")
CHAT = [{"role": "user", "content": "Can you give me a quick vegetarian lasagna recipe for four people?"},
        {"role": "assistant", "content": "Sure. Layer lasagna sheets with a spinach and ricotta filling and a tomato "
                                         "sauce, top with mozzarella and bake for 40 minutes at 190 degrees."},
        {"role": "user", "content": "And a shopping list?"},
        {"role": "assistant", "content": "Lasagna sheets, spinach, ricotta, tomatoes, mozzarella, garlic, onion."}]


def interview(answers, session=CHAT, key="x"):
    record = {"id": key, "sessionModel": "m1", "session": session, "sessionStart": None, "sessionEnd": None,
              "interviewModel": "iv", "interviewStart": None, "interviewEnd": None,
              "interview": [turn for q, a in zip(QUESTIONS, answers)
                            for turn in ({"role": "assistant", "content": q}, {"role": "user", "content": a})]}
    return to_interview(record, "quality-test", "test", 1)


@pytest.fixture(scope="module")
def judge(embedder):
    anchors = AnchorSentiment(embedder).anchor_vectors()

    def run(interviews, **kwargs):
        units = split_units(interviews)
        vectors = embedder.embed([u.answer for u in units])
        verdicts = judge_quality(interviews, units, vectors, embedder, anchors, **kwargs)
        return {v.interview_id: v for v in verdicts}
    return run


@pytest.mark.parametrize(("answer", "low"), [
    ("", True), ("idk", True), ("OK.", True), ("n/a", True), ("asdf", True), ("???", True), ("zzzz", True),
    ("no comment", True), ("helpful", False), ("confusing, inefficient", False), ("It was too slow", False),
])
def test_low_effort_answers(answer, low):
    assert is_low_effort(answer) is low


def test_crafted_low_effort_interviews_get_the_right_reasons(judge):
    good = interview(GOOD_ANSWERS, key="good")
    shrugs = interview(("idk", "ok", "", "no", "fine"), key="shrugs")
    pasted = interview(("it was ok",) * 5, key="pasted")
    from_chat = interview((CHAT[1]["content"], CHAT[3]["content"], "fine", "Mostly accurate.", CHAT[1]["content"]),
                          key="from-chat")
    off_topic = interview(("my cat keeps walking across my keyboard", "I'm thinking about pizza for lunch",
                           "the traffic this morning was terrible", "my sister visits next week",
                           "Helpful overall."), key="off-topic")
    short = interview(GOOD_ANSWERS, session=CHAT[:1], key="short")
    verdicts = judge([good, shrugs, pasted, from_chat, off_topic, short])
    assert not verdicts[good.interview_id].low_quality and verdicts[good.interview_id].reasons == ()
    assert "empty_answers" in verdicts[shrugs.interview_id].reasons
    assert "copy_pasted" in verdicts[pasted.interview_id].reasons
    assert "copy_pasted" in verdicts[from_chat.interview_id].reasons
    assert verdicts[off_topic.interview_id].reasons == ("unrelated_answers",)
    assert verdicts[short.interview_id].reasons == ("short_chat",)
    assert verdicts[off_topic.interview_id].details["unrelated_answers"] >= 3
    assert all(v.low_quality == bool(v.reasons) for v in verdicts.values())


def test_a_study_without_chats_is_not_judged_on_chat_length(judge):
    # HALIE-like surveys log no chat at all: that says nothing about any one interview.
    verdicts = judge([interview(GOOD_ANSWERS, session=[], key="a"), interview(GOOD_ANSWERS[::-1], session=[], key="b")])
    assert not any(v.low_quality for v in verdicts.values())


def test_llm_judge_adds_its_reason(judge):
    good = interview(GOOD_ANSWERS, key="judged")
    verdicts = judge([good], llm_judgements={good.interview_id: "generic answers"})
    assert verdicts[good.interview_id].reasons == ("llm_judge",)
    assert verdicts[good.interview_id].details["llm_reason"] == "generic answers"


def test_thresholds_are_options(judge):
    one_shrug_of_five = interview(("idk",) + GOOD_ANSWERS[1:], key="one-shrug")
    strict = judge([one_shrug_of_five], options=QualityOptions(flag_share=0.2))
    assert strict[one_shrug_of_five.interview_id].reasons == ("empty_answers",)
    assert not judge([one_shrug_of_five])[one_shrug_of_five.interview_id].low_quality


def test_sample_study_planted_low_quality_interviews_are_found(judge):
    samples = next(s for s in (generate_sample(50, seed=seed) for seed in range(200))
                   if sum(x.low_quality for x in s) >= 2)  # the first seed that plants two or more
    interviews = [to_interview(s.record, "quality-sample", "sample", n) for n, s in enumerate(samples)]
    verdicts = judge(interviews)
    planted = {i.interview_id for i, s in zip(interviews, samples) if s.low_quality}
    flagged = {i for i, v in verdicts.items() if v.low_quality}
    assert planted and planted <= flagged
    assert len(flagged - planted) <= 0.05 * len(interviews)
