"""Offline opinion labels (miner.opinion_label): a short clause that says what people think."""

from __future__ import annotations

import pytest

from miner.opinion_label import _clauses, label_opinion_theme
from miner.stance import VaderStance


@pytest.fixture(scope="module")
def embedder():
    from miner.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


def _label(texts, embedder):
    return label_opinion_theme(texts, embedder.embed(texts), VaderStance().stances(texts), embedder)


def keys(text: str) -> list[str]:
    return [key for key, _ in _clauses(text)]


def test_clauses_drop_openers_and_keep_short_ones():
    assert keys("Honestly, it made up the sources, and the quotes were fake to be honest.") == [
        "it made up the sources", "the quotes were fake"]
    assert keys("I think it's great for coding; I'd use it again!") == ["it's great for coding",
                                                                         "i'd use it again"]
    assert not keys("It gave me journal articles that turned out to be fabricated.")  # 9 words


def test_the_label_says_the_opinion_not_the_topic(embedder):
    texts = ["it made up sources", "the sources it gave were fake", "it invented citations, honestly",
             "I caught it making up sources and quotes", "half the citations were made up",
             "the quotes and sources it listed did not exist when I checked them"]
    label = _label(texts, embedder)
    assert label.stance == "negative"
    assert any(w in label.phrase.lower() for w in ("made up", "fake", "invented", "making up")), label.phrase
    assert len(label.phrase.split()) <= 6


def test_a_clause_of_the_other_stance_is_never_the_label(embedder):
    texts = ["the code it wrote was great", "great for coding", "it wrote great code",
             "its code was not great", "really good at code"]
    label = _label(texts, embedder)
    assert label.stance == "positive" and label.phrase.lower() != "its code was not great"


def test_identifiers_never_reach_the_label(embedder):
    texts = ["mail me at jo.doe@example.com", "jo.doe@example.com, slow", "it was slow",
             "mail jo.doe@example.com", "too slow"]
    for text in [_label(texts, embedder).phrase, *(_label([t], embedder).phrase for t in texts)]:
        assert "@" not in text and "example" not in text and "doe" not in text, text


def test_the_label_keeps_the_words_as_written(embedder):
    texts = ["the AI made up sources", "the AI made up sources", "honestly the AI made up sources",
             "ChatGPT never made up sources like this", "the AI invented the sources I asked for"]
    label = _label(texts, embedder)
    assert "AI" in label.phrase and label.phrase[0].isupper(), label.phrase
    assert label.phrase.lower() not in ("ai", "the ai")  # a clause with its predicate, not a name
