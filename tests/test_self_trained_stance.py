"""The self-trained stance estimator that BENCHMARKS.md § Opinions measured and did not adopt
(benchmarks/self_trained_stance.py): the behaviour its benchmark rows and verdict rest on."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # not a package

from self_trained_stance import SelfTrainedStance  # noqa: E402


@pytest.fixture(scope="module")
def embedder():
    from miner.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


def _aspect_units(texts):
    from miner.opinion_units import split_aspect_spans

    return [(i, text[s.start:s.end]) for i, text in enumerate(texts) for s in split_aspect_spans(text)]


def test_self_trained_stance_reads_complaints_by_their_neighbours(embedder):
    """On a file of restaurant reviews (MAMS validation, its texts only; the gold pairs only score
    the result here) the self-trained estimator gives a side to units the lexicon and anchors leave
    neutral, and mostly the side their review holds: measured 28 units moved to negative, 86% in a
    text with a gold negative, and 16 to positive, 88% with a gold positive (all neutral-read units:
    62% / 50%). Named: implicit complaints about the staff with no or weak sentiment words. The
    constants were chosen on this file (BENCHMARKS.md § Opinions, "Self-trained stance")."""
    from miner.eval_opinions import read_opinion_csv

    from conftest import needs_shared_data

    data = read_opinion_csv(needs_shared_data("mams_acsa_validation.csv"))
    owners, texts = zip(*_aspect_units(data.texts))
    vectors = embedder.embed(list(texts))
    stance = SelfTrainedStance(embedder)
    base = stance.base.scores(texts, vectors)
    after = stance.scores(texts, vectors)
    moved = {side: [i for i, (b, a) in enumerate(zip(base, after)) if abs(b) <= stance.base.threshold
                    and (a < -stance.threshold if side == "negative" else a > stance.threshold)]
             for side in ("negative", "positive")}
    for side, units in moved.items():
        assert len(units) >= 10, (side, len(units))
        holds = sum(any(p == side for _, p in data.gold[owners[u]]) for u in units)
        assert holds / len(units) >= 0.75, (side, holds, len(units))
    by_text = dict(zip(texts, zip(base, after)))
    for complaint in ("we had to flag him down for EVERYTHING.", "the staff wasn't ready for us",
                      "even though there were empty tables they still didn't seat us!"):
        before, now = by_text[complaint]
        assert abs(before) <= stance.base.threshold and now < -stance.threshold, (complaint, before, now)


def test_self_trained_stance_invents_no_side_for_plain_facts(embedder):
    """The estimator leans a unit the way confident units that read like it do; where complaints and
    praise are about the same things (staff and food both praised and criticised), factual units stay
    neutral, and so do implicit complaints ("we waited forty minutes for our food"): it carries a
    topic's lean, it does not read a narrative as a complaint. Too few confident units: the base alone."""
    import itertools

    staff = ["the waiter", "our server", "the hostess", "the bartender", "the manager"]
    food = ["the pasta", "the steak", "the soup", "the dessert", "the pizza"]
    said = [f"{who} {what}" for who, what in itertools.product(staff, ["was rude to us", "was unfriendly and dismissive",
                                                                       "was terrible", "was friendly and attentive",
                                                                       "was lovely and helpful", "was great"])]
    said += [f"{dish} {what}" for dish, what in itertools.product(food, ["was bland and disgusting", "was awful",
                                                                          "tasted horrible", "was delicious",
                                                                          "was excellent", "tasted wonderful"])]
    facts = ["we sat near the bar", "I ordered the salmon", "we came on a Tuesday night", "my sister had the salad",
             "the menu has pasta and pizza", "we parked across the street", "they serve brunch on weekends",
             "we were a group of six", "the restaurant is on Main Street", "I had a glass of red wine",
             "we waited forty minutes for our food", "they forgot our appetizer"]
    texts = said + facts
    stance = SelfTrainedStance(embedder)
    vectors = embedder.embed(texts)
    assert stance.base.stances(texts, vectors)[len(said):] == ["neutral"] * len(facts)
    assert stance.stances(texts, vectors)[len(said):] == ["neutral"] * len(facts)
    few = texts[:3] + facts[:2]
    assert list(stance.scores(few, embedder.embed(few))) == pytest.approx(list(stance.base.scores(few, embedder.embed(few))))
