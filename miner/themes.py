"""Themes stage: turn cluster labels into numbered themes with quotes and per-model statistics."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from miner.label import ThemeLabel
from miner.records import Theme, ThemeModelStat, Unit

logger = logging.getLogger(__name__)

QUOTES_PER_THEME = 3


def number_clusters(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0..k-1 by size (largest first; ties by first member) so ids read well
    and do not depend on the clusterer's arbitrary numbering; -1 stays -1."""
    sizes = Counter(int(label) for label in labels if label >= 0)
    first_seen = {}
    for index, label in enumerate(labels):
        first_seen.setdefault(int(label), index)
    order = sorted(sizes, key=lambda label: (-sizes[label], first_seen[label]))
    mapping = {old: new for new, old in enumerate(order)}
    return np.array([mapping.get(int(label), -1) for label in labels], dtype=np.int64)


def members_by_theme(labels: np.ndarray) -> dict[int, list[int]]:
    members: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        if label >= 0:
            members[int(label)].append(index)
    return dict(sorted(members.items()))


def representative_quotes(units: Sequence[Unit], vectors: np.ndarray, members: list[int],
                          count: int = QUOTES_PER_THEME) -> tuple[str, ...]:
    """Unit ids of the answers nearest the theme's centroid, distinct texts only."""
    centroid = vectors[members].mean(axis=0)
    similarity = vectors[members] @ centroid
    quotes: list[str] = []
    seen_texts: set[str] = set()
    for position in np.argsort(-similarity, kind="stable"):
        unit = units[members[position]]
        key = unit.answer.casefold()
        if key not in seen_texts:
            seen_texts.add(key)
            quotes.append(unit.unit_id)
        if len(quotes) == count:
            break
    return tuple(quotes)


def build_themes(units: Sequence[Unit], vectors: np.ndarray, labels: np.ndarray,
                 theme_labels: Sequence[ThemeLabel]) -> list[Theme]:
    """Themes (ids 0..k-1 as in `labels`) with their sizes and quotes."""
    themes = []
    for (theme_id, members), named in zip(members_by_theme(labels).items(), theme_labels, strict=True):
        themes.append(
            Theme(
                theme_id=theme_id,
                label=named.label,
                keywords=named.keywords,
                labeller=named.labeller,
                summary=named.summary,
                answers=len(members),
                interviews=len({units[i].interview_id for i in members}),
                quote_unit_ids=representative_quotes(units, vectors, members),
            )
        )
    return themes


def model_stats(units: Sequence[Unit], labels: np.ndarray) -> list[ThemeModelStat]:
    """Per theme × session model: answers, distinct interviews, share of the model's answers.

    The share's denominator is all of the model's answers, outliers included, so the shares of
    one model sum to at most 1 and an outlier-heavy model is not flattered.
    """
    answers_per_model = Counter(u.session_model for u in units)
    answers: Counter[tuple[int, str]] = Counter()
    interviews: dict[tuple[int, str], set[str]] = defaultdict(set)
    for unit, label in zip(units, labels):
        if label >= 0:
            key = (int(label), unit.session_model)
            answers[key] += 1
            interviews[key].add(unit.interview_id)
    stats = [
        ThemeModelStat(theme_id=theme_id, session_model=model, answers=answers[(theme_id, model)],
                       interviews=len(interviews[(theme_id, model)]),
                       share=answers[(theme_id, model)] / answers_per_model[model])
        for theme_id in sorted({key[0] for key in answers})
        for model in sorted(answers_per_model)
    ]
    return stats
