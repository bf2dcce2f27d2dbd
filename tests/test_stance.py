"""Stance of opinion units on held-out phrasings (written for this test, not taken from the
sentiment anchors, the sample generator or any benchmark set), and theme stance / labels."""

from __future__ import annotations

import numpy as np
import pytest

from miner.stance import FittedStance, OpinionStance, VaderStance, default_stance, stance_of_score, theme_stance

HELD_OUT = [
    ("it made up the sources", "negative"),
    ("the citations it gave me did not exist", "negative"),
    ("the replies were way too long", "negative"),
    ("it kept refusing to answer simple questions", "negative"),
    ("the information was out of date", "negative"),
    ("it did not help direct me in any of the right ways", "negative"),
    ("honestly it was useless for the harder clues", "negative"),
    ("it wasn't accurate at all", "negative"),
    ("it answered quickly and to the point", "positive"),
    ("really helpful for brainstorming", "positive"),
    ("it understood exactly what I meant", "positive"),
    ("the explanations were clear and friendly", "positive"),
    ("sometimes it gave me the right answer", "positive"),
    ("it saved me a lot of time", "positive"),
    ("I asked it about crossword clues", "neutral"),
    ("I used it mostly in the evening", "neutral"),
    ("it suggested three words for each clue", "neutral"),
]


def test_stance_on_held_out_phrasings():
    stance = VaderStance()
    got = stance.stances([text for text, _ in HELD_OUT])
    wrong = [(text, want, have) for (text, want), have in zip(HELD_OUT, got) if want != have]
    # A lexicon is not perfect. Measured: 13 of 17 right at the default threshold (BENCHMARKS.md
    # § Opinions), one with the opposite sign ("honestly it was useless ..." scores +0.05).
    assert len(wrong) <= 4, wrong
    assert len([w for w in wrong if {w[1], w[2]} == {"positive", "negative"}]) <= 1, wrong


@pytest.fixture(scope="module")
def embedder():
    from miner.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


def test_product_stance_on_held_out_phrasings(embedder):
    """`miner eval opinions`' estimator: measured 15 of 17 right, no sign error (BENCHMARKS.md §
    Opinions); VADER alone gets 13 with one sign error; the self-trained variant the same 15."""
    stance = default_stance(embedder)
    assert isinstance(stance, OpinionStance)
    texts = [text for text, _ in HELD_OUT]
    got = stance.stances(texts, embedder.embed(texts))
    wrong = [(text, want, have) for (text, want), have in zip(HELD_OUT, got) if want != have]
    assert len(wrong) <= 3, wrong
    assert not [w for w in wrong if {w[1], w[2]} == {"positive", "negative"}], wrong


def test_job_stance_on_held_out_phrasings(embedder):
    """The analysis job's estimator (VADER + the anchors at t = 0.1, chosen on HALIE resampled,
    BENCHMARKS.md § HALIE crossword as a study): measured 14 of 17 right, no sign error (the three
    neutral phrasings come out positive, as with the anchors alone)."""
    from miner.stance import CombinedStance, job_stance

    stance = job_stance(embedder)
    assert isinstance(stance, CombinedStance) and (stance.threshold, stance.weight) == (0.1, 1.0)
    texts = [text for text, _ in HELD_OUT]
    got = stance.stances(texts, embedder.embed(texts))
    wrong = [(text, want, have) for (text, want), have in zip(HELD_OUT, got) if want != have]
    assert len(wrong) <= 3, wrong
    assert not [w for w in wrong if {w[1], w[2]} == {"positive", "negative"}], wrong


def test_anchors_speak_only_for_text_like_them(embedder):
    """A complaint about an assistant with no sentiment word is found through the anchors; a
    sentence far from every anchor phrasing is scored by VADER alone."""
    stance = OpinionStance(embedder)
    texts = ["none of the links it gave me actually worked", "we sat by the window and ordered two soups"]
    vectors = embedder.embed(texts)
    relevance = stance.relevance_of(vectors)
    assert relevance[0] > 0.5 and relevance[1] == 0.0
    assert VaderStance().stances(texts) == ["neutral", "neutral"]
    assert stance.stances(texts, vectors) == ["negative", "neutral"]
    assert stance.scores(texts[1:], vectors[1:])[0] == pytest.approx(VaderStance().scores(texts[1:])[0])


def test_discourse_markers_are_not_sentiment():
    """"to be honest", "I feel like", "super", "pretty", "kind of" are how people talk, not what they
    think: VADER alone read them as praise (honest +2.3, like +1.5, super +2.9), so "they were super
    verbose" and "it wrote an essay for every question to be honest" came out positive and the
    demo's complaints about length made a positive theme of their own. Without them, complaints keep
    their side or read neutral, and praise stays praise."""
    stance = VaderStance()
    complaints = ["tbh the replies were super long-winded", "it was pretty slow", "kind of useless to be fair",
                  "i feel like it kept going off topic", "I felt like it dodged my question",
                  "honestly the code was super buggy", "it wrote an essay for every question to be honest"]
    got = stance.stances(complaints)
    assert "positive" not in got, list(zip(complaints, got))
    assert got[:3] == ["negative"] * 3
    assert stance.stances(["to be honest, it was brilliant", "I feel like it was really helpful",
                           "it was super"]) == ["positive"] * 3


def test_make_up_for_is_not_a_complaint():
    assert VaderStance().stances(["it made up the sources", "the great drinks more than make up for it"]) == [
        "negative", "positive"]


def test_negation_flips_stance():
    stance = VaderStance()
    assert stance.stances(["it was helpful", "it was not helpful", "it was not bad at all"]) == [
        "positive", "negative", "positive"]


@pytest.mark.parametrize("stances,expected", [
    (["negative"] * 8 + ["neutral"] * 2, "negative"),
    (["positive"] * 7 + ["negative"] * 3, "positive"),
    (["positive"] * 5 + ["negative"] * 5, "mixed"),
    (["neutral"] * 3, "neutral"),
    ([], "neutral"),
])
def test_theme_stance_by_unit_shares(stances, expected):
    assert theme_stance(stances) == expected


def test_opinion_label_is_a_phrase_with_the_stance():
    from miner.embed import SentenceTransformerEmbedder
    from miner.opinion_label import label_opinion_theme

    embedder = SentenceTransformerEmbedder()
    texts = ["the answers were way too long", "it rambled on, far too long", "responses too long and wordy",
             "too long, I had to scroll", "way too long for a simple question"]
    label = label_opinion_theme(texts, embedder.embed(texts), VaderStance().stances(texts), embedder)
    assert label.stance == "negative"
    assert "long" in label.phrase.lower() and len(label.phrase.split()) <= 6
    assert label.label == f"{label.phrase} (negative)"


# A labelled set written for this test (restaurant units, as MAMS's), and held-out units: a
# stance fitted on labelled units reads narrative complaints a lexicon scores 0.
FIT_TRAIN = {
    "positive": ["the pasta was delicious", "our server was friendly and attentive", "great wine list",
                 "the dessert was amazing", "lovely cosy atmosphere", "the staff made us feel welcome",
                 "the steak was cooked perfectly", "prices were very fair for the portions"],
    "negative": ["we waited an hour for our table", "the waiter forgot our drinks twice",
                 "nobody came to take our order", "the soup arrived cold", "the manager ignored our complaint",
                 "we had to ask three times for the bill", "they brought us the wrong dishes",
                 "the hostess rolled her eyes at us"],
    "neutral": ["we went there on a Tuesday", "I ordered the fish", "my sister had the salad",
                "we sat near the window", "the restaurant is on the corner of the street",
                "we came for lunch", "there is a bar upstairs", "they open at noon"],
}
FIT_HELD_OUT = [("our waiter never came back to check on us", "negative"),
                ("the food took forever to arrive and was cold", "negative"),
                ("the chicken was tasty and fresh", "positive"),
                ("the waitress was warm and helpful", "positive"),
                ("we had dinner there on Friday", "neutral"),
                ("I ordered the soup and a salad", "neutral")]


def test_fitted_stance_learns_the_labelled_polarities(embedder):
    texts = [t for texts in FIT_TRAIN.values() for t in texts]
    labels = [{polarity} for polarity, texts in FIT_TRAIN.items() for _ in texts]
    # Units whose own polarity is unknown (a text's gold says only which polarities it holds) count 1/n each.
    texts += ["we went there for lunch and the pasta was delicious"]
    labels += [{"neutral", "positive"}]
    # 25 units give softer probabilities than MAMS's 10k (where the default threshold 0.3 was
    # chosen), so the side is taken above 0.1 here; neutral units must stay nearer 0.
    stance = FittedStance(threshold=0.1).fit(embedder.embed(texts), labels)
    held = [t for t, _ in FIT_HELD_OUT]
    scores = stance.scores(held, embedder.embed(held))
    polar = [(t, want, round(float(s), 2)) for (t, want), s in zip(FIT_HELD_OUT, scores) if want != "neutral"]
    assert all(stance_of_score(s, 0.1) == want for _, want, s in polar), polar
    neutral = [(t, round(float(s), 2)) for (t, want), s in zip(FIT_HELD_OUT, scores) if want == "neutral"]
    assert all(abs(s) < 0.2 for _, s in neutral), neutral
    assert VaderStance().stances(held[:1]) == ["neutral"]  # the lexicon cannot read this complaint


def test_fitted_stance_refuses_what_it_cannot_fit():
    vectors = np.eye(4)
    with pytest.raises(ValueError, match="two polarities"):
        FittedStance().fit(vectors, [{"positive"}] * 4)
    with pytest.raises(ValueError, match="not one of"):
        FittedStance().fit(vectors, [{"positive"}, {"negative"}, {"great"}, set()])
    with pytest.raises(ValueError, match="fit"):
        FittedStance().scores(["x"], vectors[:1])
