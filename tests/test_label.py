"""Extractive labels: c-TF-IDF keywords, and no theme without keywords."""

from __future__ import annotations

from miner.label import ExtractiveLabeller, ctfidf_keywords


def test_keywords_say_what_sets_a_cluster_apart():
    keywords = ctfidf_keywords([
        ["way too verbose", "the replies were too long and verbose", "verbose, long paragraphs"],
        ["it refused a harmless request", "refused to answer a harmless question", "it refused again"],
    ])
    assert keywords[0][0] == "verbose" and "refused" not in keywords[0]
    assert keywords[1][0] == "refused" and "verbose" not in keywords[1]


def test_clusters_of_numbers_stop_words_or_punctuation_still_get_keywords():
    keywords = ctfidf_keywords([["4/5", "four out of five", "I'd give it a 4"], ["?", "?", "..."], ["no", "no", "nope"]])
    assert "4" in keywords[0] and "four" in keywords[0]
    assert keywords[1] == ["?", "..."]  # no word at all: the answers themselves
    assert keywords[2] == ["nope"]  # the one word that is not a stop word


def test_labels_come_from_the_top_keywords():
    labels = ExtractiveLabeller().label_all([["slow slow replies", "so slow"], ["friendly tone", "very friendly"]])
    assert labels[0].label.startswith("slow") and labels[0].labeller == "extractive"
    assert labels[1].label.startswith("friendly")
