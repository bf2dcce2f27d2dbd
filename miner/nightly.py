"""Incremental aggregation: fold new answers into a study's existing themes.

New answers join the nearest theme when they sit as close to its centroid as the theme's own
members do; the rest wait in an unassigned pool. A tight group in the pool is born as a new
theme. When the pool or the growth since the last full clustering passes a threshold, everything
is re-clustered and matched to the old themes (miner.registry), so ids survive either way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from miner.protocols import Clusterer
from miner.registry import ThemeEvent, match_themes
from miner.themes import number_clusters

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NightlyParams:
    """Thresholds of the incremental run."""

    # A theme accepts a new answer whose similarity to its centroid is at least the
    # similarity of this quantile of its own members (its "radius"), and never below the floor.
    member_quantile: float = 0.05
    min_similarity: float = 0.35
    # Re-cluster everything when this share of all answers is unassigned ...
    recluster_unassigned_share: float = 0.15
    # ... or the study grew by this share since its last full clustering.
    recluster_growth: float = 0.5
    # A group in the pool needs this many answers, this alike on average, to be born as a theme.
    min_new_theme_size: int = 8
    pool_link_similarity: float = 0.5


@dataclass(frozen=True)
class NightlyResult:
    labels: np.ndarray                       # stable theme id per unit, -1 = unassigned
    events: tuple[ThemeEvent, ...]
    counts: dict[str, int | float | str] = field(default_factory=dict)


def centroids(vectors: np.ndarray, labels: np.ndarray) -> dict[int, tuple[np.ndarray, float]]:
    """Theme → (unit-length centroid, acceptance radius as a similarity)."""
    result = {}
    for theme_id in sorted(set(int(x) for x in labels if x >= 0)):
        members = vectors[labels == theme_id]
        centre = members.mean(axis=0)
        centre /= np.linalg.norm(centre) or 1.0
        result[theme_id] = (centre, float(np.quantile(members @ centre, NightlyParams.member_quantile)))
    return result


def assign_to_themes(vectors: np.ndarray, known: dict[int, tuple[np.ndarray, float]], floor: float) -> np.ndarray:
    """Nearest theme per vector when within that theme's radius, else -1."""
    if not known or len(vectors) == 0:
        return np.full(len(vectors), -1, dtype=np.int64)
    ids = np.array(list(known))
    matrix = np.vstack([known[i][0] for i in ids])
    radius = np.array([max(known[i][1], floor) for i in ids])
    similarity = vectors @ matrix.T
    best = similarity.argmax(axis=1)
    fits = similarity[np.arange(len(vectors)), best] >= radius[best]
    return np.where(fits, ids[best], -1)


def pool_themes(vectors: np.ndarray, min_size: int, link_similarity: float) -> np.ndarray:
    """Groups among unassigned answers: average-linkage clusters whose members are, on average,
    at least `link_similarity` alike; groups under `min_size` stay unassigned (-1).

    Not HDBSCAN: on a pool of a few dozen answers it mostly calls everything noise.
    """
    labels = np.full(len(vectors), -1, dtype=np.int64)
    if len(vectors) < min_size:
        return labels
    from sklearn.cluster import AgglomerativeClustering

    groups = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                     distance_threshold=1.0 - link_similarity).fit_predict(vectors)
    sizes = np.bincount(groups)
    for group in np.flatnonzero(sizes >= min_size):
        labels[groups == group] = group
    return labels


def fold_in(unit_ids: list[str], vectors: np.ndarray, previous: dict[str, int | None], next_theme_id: int,
            base_units: int, clusterer: Clusterer, params: NightlyParams = NightlyParams(),
            active_themes: set[int] | None = None) -> NightlyResult:
    """Stable theme ids for all units, given the published assignments of the earlier units."""
    old_labels = np.array([previous.get(u) if previous.get(u) is not None else -1 for u in unit_ids], dtype=np.int64)
    is_new = np.array([u not in previous for u in unit_ids])
    known = centroids(vectors[~is_new], old_labels[~is_new])
    labels = old_labels.copy()
    labels[is_new] = assign_to_themes(vectors[is_new], known, params.min_similarity)
    unassigned = int((labels < 0).sum())
    growth = (len(unit_ids) - base_units) / max(base_units, 1)
    counts: dict[str, int | float | str] = {"new_units": int(is_new.sum()),
                                            "assigned_new": int((labels[is_new] >= 0).sum()),
                                            "unassigned": unassigned, "growth": round(growth, 4)}
    if unassigned / max(len(unit_ids), 1) >= params.recluster_unassigned_share or growth >= params.recluster_growth:
        clusters = number_clusters(clusterer.fit(vectors))
        match = match_themes(previous, dict(zip(unit_ids, clusters.tolist())), next_theme_id, active_themes)
        labels = np.array([match.theme_of_cluster.get(int(c), -1) for c in clusters], dtype=np.int64)
        counts.update(mode="recluster", unassigned=int((labels < 0).sum()))
        return NightlyResult(labels, match.events, counts)

    pool = np.flatnonzero(labels < 0)
    groups = number_clusters(pool_themes(vectors[pool], params.min_new_theme_size, params.pool_link_similarity))
    events = [ThemeEvent(t, "kept") for t in sorted(set(old_labels[old_labels >= 0].tolist()))]
    born = {}
    for group in sorted(set(groups.tolist()) - {-1}):
        born[group] = next_theme_id + len(born)
        events.append(ThemeEvent(born[group], "born"))
    for index, group in zip(pool, groups):
        if group >= 0:
            labels[index] = born[int(group)]
    counts.update(mode="incremental", born=len(born), unassigned=int((labels < 0).sum()))
    logger.info("nightly: %s", counts)
    return NightlyResult(labels, tuple(events), counts)
