"""Clustering of sentence embeddings into themes.

The product's default path (``cluster_vectors(x, ClusterParams())``):

1. UMAP to 5 dimensions (cosine, 15 neighbours, min_dist 0, seeded);
2. HDBSCAN on that space decides how many clusters k there are
   (min_cluster_size from :func:`min_cluster_size_for`, i.e. one rule of n; "leaf" selection:
   k = the leaves of its condensed tree, so a long tail of small themes is not merged into a
   few big ones as its default "eom" selection does on small, imbalanced sets);
3. Ward linkage over a 15-NN graph of the same UMAP space is cut into exactly
   k clusters, so every text gets a cluster (no outliers) and the borders
   between dense groups are drawn by variance, not by HDBSCAN's noise rule.

Step 3 is what beats BERTopic + ``reduce_outliers`` on BANKING77 and CLINC150, leaf
selection what beats it on their imbalanced (Zipf) subsets; chosen on held-out resamplings
(see BENCHMARKS.md, "## Clustering"). ``refine="none"`` gives the BERTopic-like
path instead (HDBSCAN clusters, outliers reassigned to the nearest centroid by
cosine in the original space); near-duplicate merging is available but off.

:func:`centre_by_group` (subtract each question's mean answer vector) is there for a caller
that wants themes less shaped by the question answered; measured in BENCHMARKS.md
("## Granularity"), not applied by default.

Pure functions of the vectors and the parameters: no Celery, no DB, no
settings. Heavy imports (umap, hdbscan, sklearn) are done inside functions so
``import miner.cluster`` stays fast. The same seed gives identical labels.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from miner.protocols import Clusterer

__all__ = [
    "ClusterParams",
    "Clusterer",
    "UmapHdbscanClusterer",
    "centre_by_group",
    "cluster_vectors",
    "min_cluster_size_for",
]


@dataclass(frozen=True)
class ClusterParams:
    """Parameters of the default clustering path; defaults are the product default.

    The path: UMAP (cosine) -> HDBSCAN, which decides the number of clusters k
    -> ``refine``: "ward" re-partitions the UMAP space into exactly k clusters
    with Ward linkage over a kNN graph (every text gets a cluster), "none"
    keeps HDBSCAN's clusters and reassigns its outliers -> optional merge of
    near-duplicate clusters. See BENCHMARKS.md for the measurements.
    """

    seed: int = 42
    n_neighbors: int = 15
    n_components: int = 5
    min_dist: float = 0.0
    # None -> derived from n by :func:`min_cluster_size_for`.
    min_cluster_size: int | None = None
    # None -> same as min_cluster_size (HDBSCAN's own default).
    min_samples: int | None = None
    # "leaf": HDBSCAN's k is the number of leaves of its condensed tree (the finest dense groups of
    # at least min_cluster_size texts); "eom" (BERTopic's) keeps the most stable clusters, which on
    # small or imbalanced sets are a few big ones: on Zipf-shaped subsets of BANKING77 / CLINC150
    # (n ~ 200) it found 2-3 clusters where leaf finds 5-8 (BENCHMARKS.md, "## Clustering").
    cluster_selection_method: str = "leaf"
    # "ward": Ward agglomerative clustering of the UMAP space into HDBSCAN's k.
    # "none": HDBSCAN's own clusters (then outlier reassignment below).
    refine: str = "ward"
    # Neighbours in the kNN connectivity graph that Ward may merge along
    # (keeps Ward O(n * ward_neighbors) in memory instead of O(n^2)).
    ward_neighbors: int = 15
    # Outliers still unassigned (refine="none") go to the nearest cluster
    # centroid (cosine, original embedding space) when their similarity is at
    # least this value; -1.0 reassigns every outlier; None disables it.
    reassign_min_similarity: float | None = -1.0
    # Merge clusters whose centroids (original space) have cosine similarity
    # above this value; None disables merging.
    merge_threshold: float | None = None
    # Stopping rule on a hierarchy over the clusters: the two clusters most linked in the
    # kNN graph of the UMAP space (share of their edges that join them) are merged until no
    # pair is linked above this value; None disables it. See :func:`_merge_linked`.
    link_threshold: float | None = None


def min_cluster_size_for(n: int) -> int:
    """The documented rule for HDBSCAN's min_cluster_size given n texts.

    ``max(10, round(n / 1000))``: HDBSCAN's customary 10 (BERTopic's default)
    up to 10,000 texts; above that a cluster must hold at least 0.1% of the
    texts (20,000 -> 20, 50,000 -> 50), so large studies are not cut into
    hundreds of tiny themes. HDBSCAN then decides the number of clusters.
    """
    return max(10, int(round(max(n, 0) / 1000)))


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return x / norms


def centre_by_group(vectors: np.ndarray, groups, strength: float = 1.0, min_group: int = 10) -> np.ndarray:
    """Subtract each group's mean vector (e.g. the mean answer to each question) and re-normalise.

    What every answer to one question shares (the question's topic) is taken out, so clusters
    form on what the answers say rather than on which question they answer. ``strength`` scales
    the subtracted mean (1.0 = full centring); groups with fewer than ``min_group`` rows keep
    their vectors (a mean of a handful of answers is mostly those answers). Rows and their order
    are kept; vectors are returned L2-normalised float32.
    """
    x = _normalise(vectors)
    groups = np.asarray(groups)
    if groups.shape[0] != x.shape[0]:
        raise ValueError(f"groups has {groups.shape[0]} entries for {x.shape[0]} vectors")
    out = x.copy()
    names, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    for g in range(len(names)):
        if counts[g] < min_group:
            continue
        rows = inverse.ravel() == g
        out[rows] -= strength * x[rows].mean(axis=0)
    return _normalise(out)


def _centroids(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    cents = np.zeros((k, x.shape[1]), dtype=np.float64)
    np.add.at(cents, labels[labels >= 0], x[labels >= 0])
    return _normalise(cents)


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Map labels to 0..k-1 in order of first appearance; -1 stays -1."""
    out = np.full(labels.shape, -1, dtype=np.int64)
    mapping: dict[int, int] = {}
    for i, lab in enumerate(labels.tolist()):
        if lab < 0:
            continue
        if lab not in mapping:
            mapping[lab] = len(mapping)
        out[i] = mapping[lab]
    return out


def _reassign_outliers(x: np.ndarray, labels: np.ndarray, min_sim: float) -> np.ndarray:
    k = int(labels.max()) + 1 if labels.size else 0
    out_idx = np.flatnonzero(labels < 0)
    if k == 0 or out_idx.size == 0:
        return labels
    cents = _centroids(x, labels, k)
    sims = x[out_idx] @ cents.T
    best = sims.argmax(axis=1)
    ok = sims[np.arange(out_idx.size), best] >= min_sim
    labels = labels.copy()
    labels[out_idx[ok]] = best[ok]
    return labels


def _merge_near_duplicates(x: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:
    """Single-link merge of clusters whose centroid cosine exceeds threshold."""
    k = int(labels.max()) + 1 if labels.size else 0
    if k < 2:
        return labels
    cents = _centroids(x, labels, k)
    sims = cents @ cents.T
    parent = list(range(k))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    ii, jj = np.nonzero(np.triu(sims, 1) > threshold)
    for a, b in zip(ii.tolist(), jj.tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(c) for c in range(k)])
    merged = np.where(labels >= 0, roots[np.clip(labels, 0, None)], -1)
    return _relabel(merged)


def cluster_vectors(vectors: np.ndarray, params: ClusterParams = ClusterParams()) -> np.ndarray:
    """L2-normalised float32 embeddings (n, d) -> int labels (n,).

    Labels are 0..k-1; -1 only for outliers left after reassignment.
    Deterministic for a given ``params.seed``.
    """
    if params.refine not in ("ward", "none"):
        raise ValueError(f"unknown refine {params.refine!r}; choose 'ward' or 'none'")
    x = _separate_duplicates(_normalise(vectors), params.seed)
    n = x.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n < max(2 * (params.min_cluster_size or min_cluster_size_for(n)), params.n_components + 2):
        return np.zeros(n, dtype=np.int64)
    emb = reduce_vectors(x, params)
    # HDBSCAN's n × min_samples core-distance arrays are the fit's peak (BENCHMARKS.md `## Scale`):
    # under them neither the normalised copy (made again after, the same function of the same
    # vectors) nor UMAP's freed heap (handed back to the OS).
    del x
    release_freed_memory()
    labels = _hdbscan_labels(emb, params)
    return _refined(_separate_duplicates(_normalise(vectors), params.seed), emb, labels, params)


def release_freed_memory() -> None:
    """Hand the C heap's freed pages back to the OS (glibc ``malloc_trim``; nothing elsewhere).

    UMAP's fit frees ~50 MB of small allocations that glibc otherwise keeps mapped, so they would
    count again under HDBSCAN's n × min_samples core-distance arrays, the cluster step's peak
    (BENCHMARKS.md `## Scale`, a whole job). Frees nothing in use: the labels do not change."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is not None:
        trim(0)


def reduce_vectors(x: np.ndarray, params: ClusterParams = ClusterParams()) -> np.ndarray:
    """Step 1 of :func:`cluster_vectors`: UMAP of the normalised vectors x (n, d) to (n, n_components)."""
    import umap

    reducer = umap.UMAP(
        n_neighbors=min(params.n_neighbors, x.shape[0] - 1),
        n_components=params.n_components,
        min_dist=params.min_dist,
        metric="cosine",
        random_state=params.seed,
        n_jobs=1,
    )
    return reducer.fit_transform(x)  # the reducer's neighbour index is large: dropped here


def cluster_reduced(x: np.ndarray, emb: np.ndarray, params: ClusterParams = ClusterParams()) -> np.ndarray:
    """Steps 2-3 of :func:`cluster_vectors` on the normalised vectors x and their UMAP space emb.

    Split out so that a benchmark can score several HDBSCAN / refine settings on one UMAP run; only
    the UMAP fields of ``params`` are not used here.
    """
    return _refined(x, emb, _hdbscan_labels(emb, params), params)


def _hdbscan_labels(emb: np.ndarray, params: ClusterParams) -> np.ndarray:
    """Step 2: HDBSCAN's clusters of the UMAP space, relabelled 0..k-1 (-1: noise)."""
    import hdbscan

    mcs = params.min_cluster_size or min_cluster_size_for(emb.shape[0])
    clusterer = hdbscan.HDBSCAN(
        min_cluster_size=mcs,
        min_samples=params.min_samples,
        metric="euclidean",
        cluster_selection_method=params.cluster_selection_method,
        core_dist_n_jobs=1,
    )
    return _relabel(np.asarray(clusterer.fit_predict(emb)))


def _refined(x: np.ndarray, emb: np.ndarray, labels: np.ndarray, params: ClusterParams) -> np.ndarray:
    """Step 3 on HDBSCAN's labels: Ward's re-cut or outlier reassignment, then the optional merges."""
    n = x.shape[0]
    k = int(labels.max()) + 1
    if k == 0:
        return np.zeros(n, dtype=np.int64)
    if params.refine == "ward":
        labels = _ward(emb, k, params.ward_neighbors)
    if params.reassign_min_similarity is not None:
        labels = _reassign_outliers(x, labels, params.reassign_min_similarity)
    if params.link_threshold is not None and (labels >= 0).all():
        labels = _merge_linked(emb, labels, params.ward_neighbors, params.link_threshold)
    if params.merge_threshold is not None:
        labels = _merge_near_duplicates(x, labels, params.merge_threshold)
    return _relabel(labels)


def _separate_duplicates(x: np.ndarray, seed: int) -> np.ndarray:
    """Nudge repeated vectors (identical answers) apart by a seeded ~1e-3 so UMAP's exact
    neighbour search meets no distance ties: with ties its output differed from one process
    to the next, so the same input did not always give the same themes."""
    # Rows compared through one random projection: identical rows share it, and np.unique over
    # n floats costs little memory where np.unique(axis=0) sorts a copy of the whole matrix.
    if len(x) < 2:
        return x
    projection = np.random.default_rng(0).normal(size=x.shape[1])
    signature = np.concatenate([x[i:i + 8192].astype(np.float64) @ projection for i in range(0, len(x), 8192)])
    _, first, inverse = np.unique(signature, return_index=True, return_inverse=True)
    repeated = np.flatnonzero(first[inverse.ravel()] != np.arange(len(x)))
    if repeated.size == 0:
        return x
    rng = np.random.default_rng(seed)
    x = x.copy()
    x[repeated] += rng.normal(scale=1e-3 / np.sqrt(x.shape[1]), size=(repeated.size, x.shape[1])).astype(x.dtype)
    return _normalise(x)


def _link_strength(emb: np.ndarray, labels: np.ndarray, n_neighbors: int, metric: str = "euclidean") -> np.ndarray:
    """Edges of the symmetric kNN graph of ``emb`` between every two clusters (k x k, diagonal = within)."""
    import scipy.sparse as sp
    from sklearn.neighbors import kneighbors_graph

    n, k = len(labels), int(labels.max()) + 1
    graph = kneighbors_graph(emb, min(n_neighbors, n - 1), metric=metric, include_self=False)
    graph = ((graph + graph.T) > 0).astype(np.float64)
    member = sp.csr_matrix((np.ones(n), (np.arange(n), labels)), shape=(n, k))
    return np.asarray((member.T @ graph @ member).todense())


def _merge_linked(emb: np.ndarray, labels: np.ndarray, n_neighbors: int, threshold: float,
                  metric: str = "euclidean") -> np.ndarray:
    """Merge clusters that the kNN graph does not separate: a stopping rule on a hierarchy.

    The link between two clusters is the share of their kNN edges that join them,
    ``edges(a, b) / sqrt(degree(a) * degree(b))``. The two most linked clusters are merged
    (their edges add up) until no pair is linked above ``threshold``. Pieces of one dense
    region (one opinion said in many phrasings, cut up because a big study makes every
    phrasing dense enough to be a cluster) share many edges; distinct groups share few.
    The rule depends on how clusters touch, not on how many texts there are.
    """
    k = int(labels.max()) + 1 if labels.size else 0
    if k < 2:
        return labels
    edges = _link_strength(emb, labels, n_neighbors, metric)
    alive = np.ones(k, dtype=bool)
    root = np.arange(k)
    while alive.sum() > 1:
        degree = edges.sum(axis=1)
        link = edges / np.sqrt(np.outer(degree, degree) + 1e-12)
        np.fill_diagonal(link, -1.0)
        link[~alive, :] = -1.0
        link[:, ~alive] = -1.0
        a, b = np.unravel_index(int(np.argmax(link)), link.shape)
        if link[a, b] <= threshold:
            break
        a, b = min(a, b), max(a, b)
        edges[a, :] += edges[b, :]
        edges[:, a] += edges[:, b]
        edges[b, :] = 0.0
        edges[:, b] = 0.0
        alive[b] = False
        root[root == b] = a
    return _relabel(root[labels])


def _ward(emb: np.ndarray, k: int, n_neighbors: int) -> np.ndarray:
    """Ward linkage of the (low-dimensional) points into k clusters over a kNN graph."""
    import warnings

    from sklearn.cluster import AgglomerativeClustering
    from sklearn.neighbors import kneighbors_graph

    n = emb.shape[0]
    if k >= n:
        return np.arange(n, dtype=np.int64)
    graph = kneighbors_graph(emb, min(n_neighbors, n - 1), include_self=False)
    with warnings.catch_warnings():
        # A kNN graph with several components is completed by sklearn; fine.
        warnings.simplefilter("ignore", UserWarning)
        labels = AgglomerativeClustering(n_clusters=k, linkage="ward", connectivity=graph).fit_predict(emb)
    return _relabel(np.asarray(labels))


class UmapHdbscanClusterer:
    """The default clusterer, as a :class:`Clusterer`."""

    name = "umap-hdbscan"

    def __init__(self, params: ClusterParams = ClusterParams()):
        self.params = params

    def fit(self, vectors: np.ndarray) -> np.ndarray:
        return cluster_vectors(vectors, self.params)
