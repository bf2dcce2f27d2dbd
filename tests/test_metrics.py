import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from miner.metrics import clustering_scores, hungarian_accuracy

GOLD = ["a", "a", "a", "b", "b", "b", "c", "c", "c", "c"]
PRED = [0, 0, 1, 1, 1, 1, 2, 2, -1, -1]


def test_scores_match_sklearn_with_outliers_as_one_cluster():
    s = clustering_scores(GOLD, PRED)
    gold_codes = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    # -1 is just another cluster id for sklearn, which is what we want.
    assert s["nmi"] == pytest.approx(normalized_mutual_info_score(gold_codes, PRED))
    assert s["ari"] == pytest.approx(adjusted_rand_score(gold_codes, PRED))
    assert s["outliers"] == pytest.approx(0.2)
    assert s["clusters"] == 3


def test_hungarian_accuracy_by_hand():
    # Contingency (pred rows 0,1,2,-1 vs gold a,b,c):
    #   0: a2        1: a1 b3     2: c2     -1: c2
    # Best one-to-one: 0->a (2), 1->b (3), 2->c (2) [or -1->c (2)] = 7/10.
    assert clustering_scores(GOLD, PRED)["acc"] == pytest.approx(0.7)
    assert hungarian_accuracy(GOLD, PRED) == pytest.approx(0.7)


def test_outliers_are_not_flattering():
    gold = ["a"] * 5 + ["b"] * 5
    all_out = clustering_scores(gold, [-1] * 10)
    assert all_out["outliers"] == 1.0 and all_out["clusters"] == 0
    assert all_out["nmi"] == pytest.approx(0.0) and all_out["ari"] == pytest.approx(0.0)
    assert all_out["acc"] == pytest.approx(0.5)
    # Marking half of each class as outliers must score worse than a perfect clustering.
    half = clustering_scores(gold, [0, 0, 0, -1, -1, 1, 1, 1, -1, -1])
    perfect = clustering_scores(gold, [0] * 5 + [1] * 5)
    assert perfect["nmi"] == pytest.approx(1.0) and perfect["ari"] == pytest.approx(1.0)
    assert half["nmi"] < 1.0 and half["ari"] < 1.0 and half["acc"] < 1.0


def test_perfect_and_permuted():
    gold = np.repeat(["x", "y", "z"], 4)
    pred = np.repeat([2, 0, 1], 4)
    s = clustering_scores(gold, pred)
    assert s == pytest.approx({"nmi": 1.0, "ari": 1.0, "acc": 1.0, "outliers": 0.0, "clusters": 3})


def test_length_mismatch_raises():
    with pytest.raises(ValueError):
        clustering_scores(["a", "b"], [0])
