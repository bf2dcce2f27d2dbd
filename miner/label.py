"""Label stage: name each cluster. The extractive labeller needs no network:
class-based TF-IDF keywords (BERTopic's c-TF-IDF) over each cluster's answers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

KEYWORDS_PER_THEME = 8
WORDS_IN_LABEL = 3
# Fragments the default tokenizer leaves of contractions ("didn't" → "didn"), and fillers
# that every opinion uses; as keywords they say nothing about a theme.
EXTRA_STOP_WORDS = ("didn", "doesn", "don", "isn", "wasn", "wouldn", "couldn", "shouldn", "aren", "ve", "ll",
                    "really", "just", "pretty", "bit", "lot", "thing", "things", "like", "felt", "think")


@dataclass(frozen=True)
class ThemeLabel:
    """What a labeller says about one cluster."""

    label: str
    keywords: tuple[str, ...]
    labeller: str
    summary: str | None = None


def ctfidf_keywords(documents_per_cluster: Sequence[Sequence[str]], top_n: int = KEYWORDS_PER_THEME) -> list[list[str]]:
    """Top c-TF-IDF terms per cluster: term frequency in the cluster × log(1 + A / frequency overall).

    A cluster whose words are all stop words or numbers ("4/5", "no", "idk") gets its terms from
    a second pass that keeps them, so no theme goes without keywords.
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    joined = [" ".join(docs) for docs in documents_per_cluster]
    strict = CountVectorizer(stop_words=sorted(ENGLISH_STOP_WORDS.union(EXTRA_STOP_WORDS)), ngram_range=(1, 2),
                             token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
    keywords = _ctfidf(joined, strict, top_n)
    if any(not row for row in keywords):
        permissive = CountVectorizer(ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b")
        fallback = _ctfidf(joined, permissive, top_n)
        keywords = [row or spare or _commonest_answers(docs, top_n)
                    for row, spare, docs in zip(keywords, fallback, documents_per_cluster)]
    return keywords


def _commonest_answers(documents: Sequence[str], top_n: int) -> list[str]:
    """The answers themselves, most frequent first, for clusters without a single word ("?", "…")."""
    counts: dict[str, int] = {}
    for text in documents:
        counts[text.strip()[:40]] = counts.get(text.strip()[:40], 0) + 1
    return sorted(counts, key=lambda text: (-counts[text], text))[:top_n]


def _ctfidf(joined: list[str], vectorizer, top_n: int) -> list[list[str]]:
    try:
        counts = vectorizer.fit_transform(joined)
    except ValueError:  # no term survived the vectorizer
        return [[] for _ in joined]
    terms = vectorizer.get_feature_names_out()
    counts = counts.toarray().astype(np.float64)
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    average_words = counts.sum() / max(len(joined), 1)
    idf = np.log(1.0 + average_words / np.maximum(counts.sum(axis=0), 1.0))
    scores = tf * idf
    keywords: list[list[str]] = []
    for row in scores:
        chosen: list[str] = []
        # Stable tie-break on the term itself so equal scores give the same order every run.
        for index in sorted(np.flatnonzero(row > 0), key=lambda i: (-row[i], terms[i])):
            term = str(terms[index])
            if any(term in kept or kept in term for kept in chosen):
                continue  # "verbose" and "too verbose" say the same thing
            chosen.append(term)
            if len(chosen) == top_n:
                break
        keywords.append(chosen)
    return keywords


class ExtractiveLabeller:
    """Labels from c-TF-IDF keywords: no network, no model."""

    name = "extractive"

    def label_all(self, documents_per_cluster: Sequence[Sequence[str]]) -> list[ThemeLabel]:
        labels = []
        for keywords in ctfidf_keywords(documents_per_cluster):
            label = " / ".join(keywords[:WORDS_IN_LABEL]) or "(no keywords)"
            labels.append(ThemeLabel(label=label, keywords=tuple(keywords), labeller=self.name))
        return labels


def label_clusters(documents_per_cluster: Sequence[Sequence[str]], labeller: ExtractiveLabeller | None = None) -> list[ThemeLabel]:
    """One ThemeLabel per cluster, in the given order."""
    labeller = labeller or ExtractiveLabeller()
    labels = labeller.label_all(documents_per_cluster)
    logger.info("label: %d clusters labelled by %s", len(labels), labeller.name)
    return labels
