"""Stance of opinion units: positive, negative or neutral, offline.

:class:`OpinionStance` (:func:`default_stance`, ``miner eval opinions``'; the analysis job uses
:func:`job_stance`, VADER + the anchors (:class:`CombinedStance`), see its docstring; BENCHMARKS.md § Opinions) adds VADER's compound score to the embedding-anchor score, the anchors weighted by how much the
unit looks like them: the anchors are praise and complaint about an assistant, and a unit far
from all of them (a restaurant review, an unrelated remark) is scored by the lexicon alone.
:class:`VaderStance` scores a unit with VADER's lexicon and rules (negation, "but",
intensifiers, all-caps) plus a few complaint words about assistants VADER lacks ("made up",
"verbose", "outdated"); the compound score above ``threshold`` is positive, below
``-threshold`` negative, else neutral. :class:`AnchorStance` uses the embedding-anchor
estimator of miner/ratings.py; :class:`CombinedStance` adds the two without the relevance
weight. Each has ``stances(texts, vectors) -> list[str]`` and ``scores(texts, vectors)`` on
VADER's -1..1 range (OpinionStance's and CombinedStance's: -3..3).

:class:`FittedStance` is supervised and opt-in (``miner eval opinions --stance-train``): a
logistic-regression head on unit vectors fitted on labelled units of one domain; no default uses it.

:func:`theme_stance` turns unit stances into a theme's: positive / negative / neutral when
one holds at least ``MAJORITY`` of the units, else mixed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Sequence

import numpy as np

from miner.components import Embedder, NotInstalledError

__all__ = ["OpinionStance", "VaderStance", "AnchorStance", "CombinedStance", "FittedStance", "default_stance", "job_stance",
           "theme_stance", "stance_of_score"]

MAJORITY = 0.6
# Words and phrases people use about assistants that VADER's lexicon scores 0 (or wrongly);
# valence on VADER's -4..4 scale. Added to its lexicon, so negation and "but" rules apply.
ASSISTANT_LEXICON: dict[str, float] = {
    "verbose": -1.5, "wordy": -1.5, "rambled": -1.5, "rambling": -1.5, "long-winded": -1.5,
    "outdated": -1.5, "inaccurate": -2.0, "incorrect": -2.0, "wrong": -2.0,
    "fabricated": -2.5, "hallucinated": -2.0, "invented": -1.0, "confusing": -1.5, "confused": -1.5,
    "irrelevant": -1.5, "slow": -1.5, "refused": -1.5, "unhelpful": -2.0, "clunky": -1.5,
    "made-up": -2.0, "make-up": -2.0, "makes-up": -2.0, "too-long": -1.5, "too-slow": -1.8, "too-wordy": -1.8,
    "too-verbose": -1.8, "too-cautious": -1.5, "out-of-date": -1.5,
    "vague": -1.2, "generic": -1.0, "repetitive": -1.5, "lagged": -1.5,
    "accurate": 1.5, "concise": 1.5, "fast": 1.2, "quick": 1.2, "quickly": 1.0, "relevant": 1.2,
    "knowledgeable": 1.8, "efficient": 1.5, "insightful": 1.8, "clear": 1.2, "correct": 1.5,
    "informative": 1.5, "responsive": 1.2, "polite": 1.5,
}


# Multi-word complaints joined into one lexicon token before VADER sees them.
# ("make up for it" is not a complaint.)
_PHRASES = re.compile(r"\b(?:made up|make up|makes up)\b(?!\s+for\b)|"
                      r"\b(?:too long|too slow|too wordy|too verbose|too cautious|long winded|out of date)\b",
                      re.IGNORECASE)


# Discourse markers VADER reads as sentiment: "to be honest" (honest +2.3), "I feel like" (like +1.5),
# "super verbose" (super +2.9: an intensifier here, not praise), "pretty slow" (pretty +2.2), "kind
# of" (kind +2.4). Hedges and fillers say how people speak, not what they think: dropped, or made the
# intensifier / hedge VADER knows ("very", "quite", "somewhat"), before VADER reads the unit.
_DISCOURSE = (
    (re.compile(r"\b(?:to be (?:honest|fair)|honestly|frankly|tbh)\b,?", re.IGNORECASE), ""),
    (re.compile(r"\b(?:i\s+)?(?:feel|felt|feels)\s+like\b", re.IGNORECASE), ""),
    (re.compile(r"\bsuper\b(?=\s+[a-z])", re.IGNORECASE), "very"),
    (re.compile(r"\bpretty\b(?=\s+[a-z])", re.IGNORECASE), "quite"),
    (re.compile(r"\b(?:kind|sort) of\b", re.IGNORECASE), "somewhat"),
)


def _without_discourse(text: str) -> str:
    for pattern, replacement in _DISCOURSE:
        text = pattern.sub(replacement, text)
    return text


_ASPECT_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_MODIFIERS = frozenset("not no never n't very too really so extremely quite pretty".split())


def stance_of_score(score: float, threshold: float) -> str:
    return "positive" if score > threshold else "negative" if score < -threshold else "neutral"


class VaderStance:
    """VADER compound score of each unit's text (vectors unused)."""

    name = "vader"

    def __init__(self, threshold: float = 0.05, lexicon: dict[str, float] | None = None):
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as exc:
            raise NotInstalledError("pip install vaderSentiment") from exc
        self.threshold = threshold
        self.analyzer = SentimentIntensityAnalyzer()
        self.analyzer.lexicon.update(ASSISTANT_LEXICON if lexicon is None else lexicon)

    def scores(self, texts: Sequence[str], vectors: np.ndarray | None = None) -> np.ndarray:
        text_of = (_PHRASES.sub(lambda m: m.group(0).replace(" ", "-"), _without_discourse(t)) for t in texts)
        return np.array([self.analyzer.polarity_scores(t)["compound"] for t in text_of], dtype=float)

    def stances(self, texts: Sequence[str], vectors: np.ndarray | None = None) -> list[str]:
        return [stance_of_score(s, self.threshold) for s in self.scores(texts)]

    def aspect_text(self, text: str) -> str:
        """The unit without its sentiment words, negations and intensifiers ("the food was
        not good" → "the food was"): embedded for clustering, so units group by what they are
        about and not by whether they praise or complain (stance is the unit's own, kept apart)."""
        kept = [w for w in _ASPECT_WORD.findall(text)
                if abs(self.analyzer.lexicon.get(w.lower(), 0.0)) < 0.5 and w.lower() not in _MODIFIERS]
        return " ".join(kept) or text


class AnchorStance:
    """The embedding-anchor estimator of miner/ratings.py: tanh-scaled praise-minus-complaint."""

    name = "anchor"

    def __init__(self, embedder: Embedder, threshold: float = 0.3):
        from miner.ratings import AnchorSentiment

        self.estimator = AnchorSentiment(embedder)
        self.threshold = threshold

    def scores(self, texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        # to_scale is 1..5 with 3 neutral; (x - 3) / 2 puts it on VADER's -1..1.
        return (self.estimator.to_scale(self.estimator.raw(vectors)) - 3.0) / 2.0

    def stances(self, texts: Sequence[str], vectors: np.ndarray) -> list[str]:
        return [stance_of_score(s, self.threshold) for s in self.scores(texts, vectors)]


class OpinionStance:
    """VADER compound + ``weight`` × relevance × the anchor score (AnchorStance's, -1..1).

    relevance = clip((r - low) / (high - low), 0, 1), r the mean cosine of the unit to its
    ``RELEVANCE_TOP`` nearest anchor phrasings: 1 for a unit that reads like an opinion of an
    assistant, 0 for one far from all of them, where the anchors' praise-minus-complaint
    difference is noise (on restaurant reviews it leaned positive: MAMS units' median anchor
    score +0.23; r's median 0.25 there against 0.42–0.54 on interview units and the held-out
    phrasings). Above ``threshold`` positive, below ``-threshold`` negative, else neutral.
    Constants chosen on the synthetic sample study's units (sign right and units given a side
    against the planted themes' polarity) and HALIE, BENCHMARKS.md § Opinions."""

    name = "opinion (vader + relevance·anchor)"
    THRESHOLD = 0.3
    WEIGHT = 2.0
    RELEVANCE = (0.3, 0.5)
    RELEVANCE_TOP = 3

    def __init__(self, embedder: Embedder, threshold: float = THRESHOLD, weight: float = WEIGHT,
                 relevance: tuple[float, float] = RELEVANCE):
        self.vader = VaderStance()
        self.anchor = AnchorStance(embedder)
        self.threshold, self.weight, self.relevance = threshold, weight, relevance

    def relevance_of(self, vectors: np.ndarray) -> np.ndarray:
        """0..1: how much each unit vector looks like the anchor phrasings."""
        if not len(vectors):
            return np.zeros(0)
        similar = np.asarray(vectors) @ self.anchor.estimator.anchor_vectors().T
        nearest = np.sort(similar, axis=1)[:, -self.RELEVANCE_TOP:].mean(axis=1)
        low, high = self.relevance
        return np.clip((nearest - low) / (high - low), 0.0, 1.0)

    def scores(self, texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        if not len(texts):
            return np.zeros(0)
        anchor = self.anchor.scores(texts, vectors)
        return self.vader.scores(texts) + self.weight * self.relevance_of(vectors) * anchor

    def stances(self, texts: Sequence[str], vectors: np.ndarray) -> list[str]:
        return [stance_of_score(s, self.threshold) for s in self.scores(texts, vectors)]

    def aspect_text(self, text: str) -> str:
        return self.vader.aspect_text(text)


def default_stance(embedder: Embedder) -> OpinionStance:
    """``miner eval opinions``' stance estimator (better on MAMS and on the held-out assistant phrasings).
    A self-trained variant (benchmarks/self_trained_stance.py) gains 0.02 on MAMS by carrying a topic's
    lean (staff units lean negative there) and cost the job 7 of HALIE's 8 aligned cells: measured,
    not the default (BENCHMARKS.md § Opinions, "Self-trained stance")."""
    return OpinionStance(embedder)


# The analysis job's estimator: VADER's compound + JOB_ANCHOR_WEIGHT × the anchor score, above
# JOB_THRESHOLD positive. Chosen on HALIE resampled (benchmarks/bench_halie_resample.py: the 4 themes'
# significant cells aligned with people's ratings, never against: 8–9 over 6 unit orders against 5–7
# with the anchors alone, 5.9 against 4.5 on 80% subsets) with the sample studies' ARI unchanged
# (BENCHMARKS.md § HALIE crossword as a study). At weight 0.5 (CombinedStance's default) two planted
# complaints came out positive on the sample; at t = 0.2 HALIE's large clusters no longer split.
JOB_THRESHOLD = 0.1
JOB_ANCHOR_WEIGHT = 1.0


def job_stance(embedder: Embedder) -> CombinedStance:
    """The analysis job's stance estimator: VADER + the embedding anchors (JOB_THRESHOLD, JOB_ANCHOR_WEIGHT).
    Before, the anchors alone at t = 0.1; with OpinionStance the sampled-fit test's ARI fell from 0.84 to
    0.77 (tests/test_scale.py), and on HALIE its big clusters stayed whole (0–3 aligned cells)."""
    return CombinedStance(embedder, threshold=JOB_THRESHOLD, weight=JOB_ANCHOR_WEIGHT)


class CombinedStance:
    """VADER compound + ``weight`` × the anchor score, one threshold."""

    name = "vader+anchor"

    def __init__(self, embedder: Embedder, threshold: float = 0.1, weight: float = 0.5):
        self.vader = VaderStance()
        self.anchor = AnchorStance(embedder)
        self.threshold, self.weight = threshold, weight

    def scores(self, texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        return self.vader.scores(texts) + self.weight * self.anchor.scores(texts, vectors)

    def stances(self, texts: Sequence[str], vectors: np.ndarray) -> list[str]:
        return [stance_of_score(s, self.threshold) for s in self.scores(texts, vectors)]


class FittedStance:
    """A stance fitted on labelled units: a 3-class logistic regression (scikit-learn) on the unit's
    sentence vector (the embedding the path already computes); score = P(positive) − P(negative) on
    -1..1, above ``threshold`` positive, below ``-threshold`` negative, else neutral.

    Opt-in only (``miner eval opinions --stance-train``): it learns the domain it is fitted on — on
    MAMS a restaurant's topics and how its reviewers complain — so it must not become the interview
    job's stance unnoticed. :meth:`fit` takes each unit's possible polarities: one is its label;
    several (what a text's gold says when the unit's own aspect is unknown) count each with weight
    1/n; none skips the unit. Constants chosen on MAMS validation (BENCHMARKS.md § Opinions,
    "Stance fitted on labelled texts")."""

    name = "fitted (logistic regression on unit vectors)"
    THRESHOLD = 0.3
    C = 3.0
    CLASSES = ("positive", "negative", "neutral")

    def __init__(self, threshold: float = THRESHOLD, c: float = C):
        self.threshold, self.c = threshold, c
        self.model = None
        self._vader: VaderStance | None = None

    def fit(self, vectors: np.ndarray, polarities: Sequence[Collection[str]]) -> FittedStance:
        """Fit on unit vectors and each unit's possible polarities; ValueError if fewer than two
        polarities are ever given or a polarity is not positive / negative / neutral."""
        from sklearn.linear_model import LogisticRegression

        rows, classes, weights = [], [], []
        for unit, possible in enumerate(polarities):
            unknown = set(possible) - set(self.CLASSES)
            if unknown:
                raise ValueError(f"unit {unit}: polarity {sorted(unknown)} is not one of {', '.join(self.CLASSES)}")
            for polarity in possible:
                rows.append(unit)
                classes.append(self.CLASSES.index(polarity))
                weights.append(1.0 / len(possible))
        if len(set(classes)) < 2:
            raise ValueError(f"need units of at least two polarities to fit a stance, got {len(set(classes))}")
        self.model = LogisticRegression(C=self.c, max_iter=2000).fit(
            np.asarray(vectors, dtype=np.float64)[rows], np.array(classes), sample_weight=np.array(weights))
        return self

    def scores(self, texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise ValueError("FittedStance.fit must be called before scores")
        if not len(texts):
            return np.zeros(0)
        probability = self.model.predict_proba(np.asarray(vectors, dtype=np.float64))
        column = {int(k): n for n, k in enumerate(self.model.classes_)}
        positive = probability[:, column[0]] if 0 in column else 0.0
        negative = probability[:, column[1]] if 1 in column else 0.0
        return np.asarray(positive - negative, dtype=float)

    def stances(self, texts: Sequence[str], vectors: np.ndarray) -> list[str]:
        return [stance_of_score(s, self.threshold) for s in self.scores(texts, vectors)]

    def aspect_text(self, text: str) -> str:
        """VADER's aspect text, so units cluster as they do with the default stance."""
        if self._vader is None:
            self._vader = VaderStance()
        return self._vader.aspect_text(text)


def theme_stance(stances: Sequence[str], majority: float = MAJORITY) -> str:
    """A theme's stance from its units': the one held by ≥ `majority` of them, else mixed."""
    if not stances:
        return "neutral"
    stance, count = Counter(stances).most_common(1)[0]
    return stance if count / len(stances) >= majority else "mixed"
