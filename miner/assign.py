"""Fit on a sample, assign the rest: clustering that scales past what one fit can hold.

Above a size threshold the cluster step fits any `Clusterer` on a seeded sample of the units and
every other unit goes to the theme whose centroid (mean of its sampled members, L2-normalised, in
the original embedding space) is most cosine-similar. Nearest centroid was measured against a
k-nearest-sampled-neighbours vote (BENCHMARKS.md `## Scale`); it needs only k × d floats to assign
a chunk, so the assignment can fan out over workers with nothing but the centroids.

Pure functions of arrays and parameters: no database, no settings. Same seed, same sample, same
themes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from miner.protocols import Clusterer

DEFAULT_THRESHOLD = 50_000
DEFAULT_SAMPLE = 30_000


@dataclass(frozen=True)
class SampleParams:
    """When to sample (`threshold`: more units than this) and how many units to fit on."""

    threshold: int = DEFAULT_THRESHOLD
    size: int = DEFAULT_SAMPLE
    seed: int = 42

    def sampled(self, n: int) -> bool:
        return n > self.threshold and self.size < n


def sample_indices(n: int, size: int, seed: int) -> np.ndarray:
    """A seeded sample of `size` of the positions 0..n-1, sorted."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return x / norms


def centroids_of(vectors: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels ≥ 0 present, sorted; their normalised centroids as rows), from the fitted sample."""
    labels = np.asarray(labels)
    ids = np.unique(labels[labels >= 0])
    sums = np.zeros((ids.size, vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, np.searchsorted(ids, labels[labels >= 0]), normalise(vectors[labels >= 0]))
    return ids, normalise(sums)


def assign_nearest(vectors: np.ndarray, ids: np.ndarray, centroids: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Each vector's nearest centroid (cosine) as its label from `ids`; chunked so the similarity
    matrix stays chunk × k."""
    if ids.size == 0:
        return np.full(len(vectors), -1, dtype=np.int64)
    out = np.empty(len(vectors), dtype=np.int64)
    for start in range(0, len(vectors), chunk):
        block = normalise(vectors[start:start + chunk])
        out[start:start + chunk] = ids[(block @ centroids.T).argmax(axis=1)]
    return out


def assign_knn(vectors: np.ndarray, sample: np.ndarray, sample_labels: np.ndarray, k: int = 15,
               chunk: int = 2048) -> np.ndarray:
    """The alternative measured in BENCHMARKS.md: majority label of the k most similar sampled units."""
    sample = normalise(sample)
    out = np.empty(len(vectors), dtype=np.int64)
    for start in range(0, len(vectors), chunk):
        sims = normalise(vectors[start:start + chunk]) @ sample.T
        nearest = np.argpartition(-sims, min(k, sims.shape[1] - 1), axis=1)[:, :k]
        for row, idx in enumerate(nearest):
            votes = sample_labels[idx]
            votes = votes[votes >= 0]
            out[start + row] = np.bincount(votes).argmax() if votes.size else -1
    return out


def for_sample(clusterer: Clusterer, n: int, size: int) -> Clusterer:
    """The clusterer to fit on `size` of `n` units, at the granularity the full fit would have.

    The default clusterer derives HDBSCAN's min_cluster_size from the number of texts it sees, with a
    floor of 10 (miner.cluster.min_cluster_size_for); a sample under 10,000 would meet the floor and
    find fewer, larger themes than the full fit (measured: 57 vs 101 clusters on banking77 at half).
    So a clusterer with derived `params.min_cluster_size` gets the full set's size scaled by the
    sample fraction; any other clusterer is used as it is.
    """
    from dataclasses import is_dataclass, replace

    from miner.cluster import ClusterParams, min_cluster_size_for

    params = getattr(clusterer, "params", None)
    if not (is_dataclass(params) and isinstance(params, ClusterParams) and params.min_cluster_size is None):
        return clusterer
    scaled = max(5, int(round(min_cluster_size_for(n) * size / n)))  # under 5 HDBSCAN finds noise
    return type(clusterer)(replace(params, min_cluster_size=scaled))


def fit_sample(vectors: np.ndarray, clusterer: Clusterer, params: SampleParams) -> tuple[np.ndarray, np.ndarray]:
    """(sample positions, their labels): `clusterer` fitted on the seeded sample of `vectors`."""
    index = sample_indices(len(vectors), params.size, params.seed)
    fitted = for_sample(clusterer, len(vectors), len(index)).fit(vectors[index])
    return index, np.asarray(fitted, dtype=np.int64)


class SampledClusterer:
    """Any Clusterer, fitted on a seeded sample above `params.threshold` units, the rest assigned to the
    nearest centroid (`method="centroid"`) or by a vote of sampled neighbours (`method="knn"`).
    Below the threshold it is the wrapped clusterer unchanged."""

    def __init__(self, inner: Clusterer, params: SampleParams = SampleParams(), method: str = "centroid"):
        if method not in ("centroid", "knn"):
            raise ValueError(f"unknown assignment method {method!r}; choose 'centroid' or 'knn'")
        self.inner, self.params, self.method = inner, params, method
        self.name = f"{getattr(inner, 'name', type(inner).__name__)}+sampled"

    def fit(self, vectors: np.ndarray) -> np.ndarray:
        if not self.params.sampled(len(vectors)):
            return self.inner.fit(vectors)
        index, fitted = fit_sample(vectors, self.inner, self.params)
        if self.method == "knn":
            labels = assign_knn(vectors, vectors[index], fitted)
        else:
            ids, cents = centroids_of(vectors[index], fitted)
            labels = assign_nearest(vectors, ids, cents)
        labels[index] = fitted  # the sample keeps the labels it was fitted with
        return labels


def chunks(n: int, size: int) -> Iterable[tuple[int, int]]:
    """(offset, limit) pairs covering 0..n-1."""
    for start in range(0, n, size):
        yield start, min(size, n - start)
