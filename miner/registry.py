"""Theme identity across runs: match a new clustering to the previous themes so a theme keeps
its id when its members largely carry over, and record births, merges, splits and retirements."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# A new cluster inherits an old theme's id when at least this share of the cluster's
# previously-seen members came from that theme AND at least this share of the theme's
# surviving members went to the cluster: a two-way majority, so ids never jump to a fragment.
CARRY_OVER = 0.5
# Below the two-way majority, a side that still holds this share is recorded as a merge or split.
LINEAGE_SHARE = 0.2


@dataclass(frozen=True)
class ThemeEvent:
    """One entry of a theme's lineage."""

    theme_id: int
    event: str                       # born | kept | merged | split | retired
    related: tuple[int, ...] = ()    # merged: the themes absorbed; split: the theme it came from


@dataclass(frozen=True)
class ThemeMatch:
    """How the clusters of a run map onto stable theme ids."""

    theme_of_cluster: dict[int, int]
    events: tuple[ThemeEvent, ...]


def match_themes(previous: Mapping[str, int | None], current: Mapping[str, int], next_theme_id: int,
                 active_themes: set[int] | None = None) -> ThemeMatch:
    """Give each current cluster (label ≥ 0) a stable theme id.

    `previous` maps unit id → theme id (None = unassigned) of the published run; `current`
    maps unit id → cluster label (-1 = outlier) of the new clustering; new themes are numbered
    from `next_theme_id`. `active_themes` are the previous themes to retire if they vanish
    (default: every theme seen in `previous`).
    """
    overlap: dict[int, Counter[int]] = defaultdict(Counter)   # cluster → old theme → shared units
    surviving: Counter[int] = Counter()                        # old theme → its units still present
    for unit_id, cluster in current.items():
        old = previous.get(unit_id)
        if old is not None:
            surviving[old] += 1
            if cluster >= 0:
                overlap[cluster][old] += 1
    clusters = sorted({c for c in current.values() if c >= 0})
    # Largest overlaps claim their theme first, so a theme that split goes to its biggest part.
    candidates = sorted(
        ((shared, cluster, old) for cluster in clusters for old, shared in overlap[cluster].items()),
        key=lambda item: (-item[0], item[1], item[2]),
    )
    theme_of_cluster: dict[int, int] = {}
    taken: set[int] = set()
    for shared, cluster, old in candidates:
        if cluster in theme_of_cluster or old in taken:
            continue
        known = sum(overlap[cluster].values())
        if shared / known >= CARRY_OVER and shared / surviving[old] >= CARRY_OVER:
            theme_of_cluster[cluster] = old
            taken.add(old)

    events: list[ThemeEvent] = []
    next_id = next_theme_id
    for cluster in clusters:
        if cluster in theme_of_cluster:
            theme_id = theme_of_cluster[cluster]
            absorbed = tuple(sorted(
                old for old, shared in overlap[cluster].items()
                if old != theme_id and old not in taken and shared / surviving[old] >= LINEAGE_SHARE
            ))
            events.append(ThemeEvent(theme_id, "merged" if absorbed else "kept", absorbed))
            continue
        theme_of_cluster[cluster] = theme_id = next_id
        next_id += 1
        known = sum(overlap[cluster].values())
        parents = tuple(sorted(old for old, shared in overlap[cluster].items() if shared / known >= LINEAGE_SHARE))
        events.append(ThemeEvent(theme_id, "split" if parents else "born", parents))
    for old in sorted((active_themes if active_themes is not None else set(surviving)) - taken):
        events.append(ThemeEvent(old, "retired"))
    logger.info("registry: %d clusters → %d kept, %d new, %d retired", len(clusters), len(taken),
                next_id - next_theme_id, sum(e.event == "retired" for e in events))
    return ThemeMatch(theme_of_cluster, tuple(events))
