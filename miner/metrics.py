"""External clustering metrics against gold labels.

Outliers (label -1) are scored as ONE extra cluster in NMI, ARI and accuracy,
so leaving texts unassigned is never flattering.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["clustering_scores", "hungarian_accuracy"]


def _codes(values: Sequence) -> np.ndarray:
    _, inv = np.unique(np.asarray(list(values), dtype=object).astype(str), return_inverse=True)
    return inv.ravel()


def hungarian_accuracy(gold: Sequence, predicted: Sequence) -> float:
    """Best one-to-one matching accuracy between predicted clusters and gold classes."""
    from scipy.optimize import linear_sum_assignment

    g = _codes(gold)
    p = _codes(predicted)
    if g.size == 0:
        return 0.0
    table = np.zeros((p.max() + 1, g.max() + 1), dtype=np.int64)
    np.add.at(table, (p, g), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / g.size)


def clustering_scores(gold: Sequence, predicted: Sequence[int]) -> dict:
    """{"nmi", "ari", "acc", "outliers", "clusters"} for predicted vs gold.

    nmi/ari/acc treat all -1 labels as one cluster; ``outliers`` is the
    fraction of -1 labels; ``clusters`` the number of non-outlier clusters.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    gold = list(gold)
    pred = np.asarray(list(predicted), dtype=np.int64)
    if len(gold) != pred.size:
        raise ValueError(f"gold has {len(gold)} items, predicted {pred.size}")
    if pred.size == 0:
        return {"nmi": 0.0, "ari": 0.0, "acc": 0.0, "outliers": 0.0, "clusters": 0}
    g = _codes(gold)
    return {
        "nmi": float(normalized_mutual_info_score(g, pred)),
        "ari": float(adjusted_rand_score(g, pred)),
        "acc": hungarian_accuracy(g, pred),
        "outliers": float(np.mean(pred == -1)),
        "clusters": int(np.unique(pred[pred >= 0]).size),
    }
