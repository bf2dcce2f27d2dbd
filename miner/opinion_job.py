"""The opinion layer inside the analysis job (issue 12): answers → opinion units with a stance,
clusters → stance-coherent themes, themes → a tree node's stance.

An answer that carries no opinion (miner.opinion_units.is_no_opinion: a bare rating, yes/no,
"idk", "?") gives no unit: it is counted (reporting.no_opinion) and feeds ratings, never a theme.
Every other answer gives one unit per opinion span (miner.opinion_units.split_spans), with its
own id `<answer unit id>:<k>`, the span's text as what is embedded and quoted, the whole answer
and the span's offsets kept, and a stance from the offline estimator (miner.stance.VaderStance).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache

import numpy as np

from miner.opinion_units import is_no_opinion, split_spans
from miner.records import Unit
from miner.stance import MAJORITY, theme_stance
from miner.units import answer_hash

__all__ = ["opinion_units", "split_by_stance", "node_stance", "stance_estimator"]

# A stance's share of a cluster that makes it its own theme (and at least the clusterer's
# smallest cluster): below it, the units stay with the cluster's main stance.
MIN_STANCE_SHARE = 0.2


@lru_cache(maxsize=1)
def stance_estimator():
    from miner.stance import VaderStance

    return VaderStance()


def opinion_units(answers: Sequence[Unit]) -> tuple[list[Unit], set[str]]:
    """The opinion units of these answer units, and the ids of the answers with no opinion."""
    empty: set[str] = set()
    found: list[Unit] = []
    for answer in answers:
        if is_no_opinion(answer.answer):
            empty.add(answer.unit_id)
            continue
        for k, span in enumerate(split_spans(answer.answer)):
            text = answer.answer[span.start:span.end]
            found.append(replace(answer, unit_id=f"{answer.unit_id}:{k}", answer=text, answer_hash=answer_hash(text),
                                 answer_unit_id=answer.unit_id, span_start=span.start, span_end=span.end,
                                 full_answer=answer.answer))
    stances = stance_estimator().stances([u.answer for u in found])
    return [replace(u, stance=s) for u, s in zip(found, stances)], empty


def split_by_stance(labels: np.ndarray, stances: Sequence[str | None], min_size: int) -> np.ndarray:
    """Clusters split by their units' stance, so praise and complaint about one aspect are two
    themes. A stance holding at least `min_size` units and MIN_STANCE_SHARE of its cluster gets
    its own cluster; the other units go with the cluster's largest part. Neutral units join the
    largest polar part when the cluster has no neutral part of its own. -1 stays -1."""
    out = np.full(len(labels), -1, dtype=np.int64)
    members: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        if label >= 0:
            members[int(label)].append(index)
    next_id = 0
    for cluster in sorted(members):
        indices = members[cluster]
        counts = Counter(stances[i] or "neutral" for i in indices)
        kept = [s for s, c in counts.most_common() if c >= min_size and c >= MIN_STANCE_SHARE * len(indices)]
        if not kept:
            kept = [counts.most_common(1)[0][0]]
        ids = {stance: next_id + n for n, stance in enumerate(kept)}
        next_id += len(kept)
        main = ids[kept[0]]
        polar_main = next((ids[s] for s in kept if s != "neutral"), main)
        for i in indices:
            stance = stances[i] or "neutral"
            out[i] = ids.get(stance, polar_main if stance == "neutral" else main)
    return out


def node_stance(theme_stances: dict[int, str], theme_sizes: dict[int, int], theme_ids: Sequence[int],
                majority: float = MAJORITY) -> str:
    """A tree node's stance from its themes', weighted by their sizes: the stance of at least
    `majority` of its answers, else mixed (a single theme: its own)."""
    weights: Counter[str] = Counter()
    for theme in theme_ids:
        weights[theme_stances.get(theme) or "neutral"] += theme_sizes.get(theme, 0)
    total = sum(weights.values())
    if not total:
        return "neutral"
    stance, weight = weights.most_common(1)[0]
    return stance if weight / total >= majority else "mixed"


def theme_stances(units: Sequence[Unit], labels: np.ndarray) -> dict[int, str]:
    """Theme id → its stance from its units' (miner.stance.theme_stance)."""
    by_theme: dict[int, list[str]] = defaultdict(list)
    for unit, label in zip(units, labels):
        if label >= 0:
            by_theme[int(label)].append(unit.stance or "neutral")
    return {theme: theme_stance(s) for theme, s in by_theme.items()}
