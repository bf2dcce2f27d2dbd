"""A stance estimator measured on MAMS and HALIE and not adopted by the product (BENCHMARKS.md
§ Opinions, "Self-trained stance"): kept here so that ``bench_opinions.py``'s rows can be re-run.
The product's estimators are in :mod:`miner.stance`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from miner.components import Embedder
from miner.stance import CombinedStance, OpinionStance, stance_of_score

__all__ = ["SelfTrainedStance"]


class SelfTrainedStance:
    """Transductive self-training on the input's own units: a base estimator's score (OpinionStance's)
    plus ``weight`` × (P(positive) − P(negative)) of a small classifier fitted on the same units' vectors.

    No labels from anywhere else: the units the base scores confidently are the seeds (positive above
    ``seed_margin``, negative below ``-seed_margin``; neutral the units it scores exactly 0: no lexicon
    word and far from the anchors), a class-balanced logistic regression (``c``) is fitted on their
    vectors, and every unit gets its probabilities. A unit with no sentiment word ("we waited 40 minutes
    for the food") then leans the way the confidently scored units that read like it do. Fitted anew on
    each call (the whole study or file at once: the scores of a unit depend on the others beside it);
    with fewer than ``MIN_SEEDS`` seeds of either polar class it is the base estimator alone (so a call
    on a handful of units, or on a study's units part by part, is not the same as one on all). Above
    ``threshold`` positive, below ``-threshold`` negative. Constants chosen on MAMS validation
    (BENCHMARKS.md § Opinions, "Self-trained stance")."""

    name = "self-trained (opinion + LR on the units' own confident seeds)"
    THRESHOLD = 0.4
    WEIGHT = 1.0
    SEED_MARGIN = 0.5
    C = 0.1
    MIN_SEEDS = 5

    def __init__(self, embedder: Embedder, threshold: float = THRESHOLD, weight: float = WEIGHT,
                 seed_margin: float = SEED_MARGIN, c: float = C, base: OpinionStance | CombinedStance | None = None):
        self.base = base or OpinionStance(embedder)
        self.threshold, self.weight, self.seed_margin, self.c = threshold, weight, seed_margin, c

    def seeds(self, base_scores: np.ndarray) -> np.ndarray:
        """Per unit: 1 positive seed, 0 negative, 2 neutral, -1 not a seed."""
        y = np.full(len(base_scores), -1)
        y[base_scores > self.seed_margin] = 1
        y[base_scores < -self.seed_margin] = 0
        y[base_scores == 0.0] = 2
        return y

    def lean(self, base_scores: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """P(positive) − P(negative) of the classifier fitted on the seeds (zeros when too few)."""
        y = self.seeds(base_scores)
        if min((y == 0).sum(), (y == 1).sum()) < self.MIN_SEEDS:
            return np.zeros(len(base_scores))
        from sklearn.linear_model import LogisticRegression

        seeded = y >= 0
        classifier = LogisticRegression(C=self.c, class_weight="balanced", max_iter=2000)
        classifier.fit(np.asarray(vectors)[seeded], y[seeded])
        proba = classifier.predict_proba(np.asarray(vectors))
        column = {label: k for k, label in enumerate(classifier.classes_)}
        return proba[:, column[1]] - proba[:, column[0]]

    def scores(self, texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        if not len(texts):
            return np.zeros(0)
        base_scores = self.base.scores(texts, vectors)
        return base_scores + self.weight * self.lean(base_scores, vectors)

    def stances(self, texts: Sequence[str], vectors: np.ndarray) -> list[str]:
        return [stance_of_score(s, self.threshold) for s in self.scores(texts, vectors)]

    def aspect_text(self, text: str) -> str:
        return self.base.aspect_text(text)
