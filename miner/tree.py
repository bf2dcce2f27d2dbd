"""Theme tree stage: themes grouped into a handful of top-level areas (and, for big studies, a
middle level), from the same embedding space the themes come from.

Ward linkage over the themes' centroids (unit-normalised, so Euclidean distance tracks cosine) is
cut twice: at `areas` clusters for the top level and, above MIDDLE_LEVEL_THEMES themes, at a finer
count for the middle level, so the two levels nest. Parent ids stay stable across runs the way
theme ids do (miner.registry): a parent keeps its id when most of its child themes carry over.
Pure functions over arrays and records; naming by c-TF-IDF here, by an LLM in miner.tree_label.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from miner.label import WORDS_IN_LABEL, ctfidf_keywords
from miner.registry import match_themes

logger = logging.getLogger(__name__)

MIN_AREAS, MAX_AREAS = 5, 12
# Above this many themes a middle level sits between areas and themes.
MIDDLE_LEVEL_THEMES = 40
KINDS = ("area", "group", "theme")


@dataclass(frozen=True)
class TreeNode:
    """One node of a study's theme tree. Theme leaves carry their theme id; parents their members."""

    node_id: str                  # "area:3", "group:12" or "theme:45"
    parent_id: str | None         # None for a top-level area
    level: int                    # depth: 1 = top-level area
    kind: str                     # area | group | theme
    theme_ids: tuple[int, ...]    # the themes under the node (a leaf: its own theme)
    label: str = ""
    keywords: tuple[str, ...] = ()
    labeller: str = "extractive"

    @property
    def number(self) -> int:
        return int(self.node_id.split(":", 1)[1])

    @property
    def theme_id(self) -> int | None:
        return self.theme_ids[0] if self.kind == "theme" else None


@dataclass(frozen=True)
class NodeStat:
    """A node's answers and distinct interviews, all models together or one session model."""

    node_id: str
    session_model: str | None
    answers: int
    interviews: int
    share: float | None = None       # answers / all of the model's answers (per-model rows only)
    # interviews / all of the model's interviews (per-model rows only); provisional: the statistics
    # restate it without the low-quality interviews (repository_nightly.restate_tree_prevalence)
    prevalence: float | None = None


def area_count(themes: int) -> int:
    """Top-level areas for a study of `themes` themes: √n kept within 5–12, and at most n/2 so an
    area holds two themes on average even in a small study."""
    if themes <= 1:
        return themes
    return max(1, min(MAX_AREAS, max(MIN_AREAS, round(math.sqrt(themes))), themes // 2))


def group_count(themes: int, areas: int) -> int:
    """Middle-level groups: the geometric mean of areas and themes (0 = no middle level)."""
    if themes <= MIDDLE_LEVEL_THEMES:
        return 0
    return min(themes - 1, max(areas + 1, round(math.sqrt(themes * areas))))


def cut_tree(centroids: np.ndarray, counts: Sequence[int]) -> list[np.ndarray]:
    """Nested flat clusterings of the centroids (one label array per requested count) from one
    Ward linkage; deterministic for the same input."""
    from scipy.cluster.hierarchy import fcluster, linkage

    n = len(centroids)
    if n < 2:
        return [np.zeros(n, dtype=np.int64) for _ in counts]
    unit = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    links = linkage(unit.astype(np.float64), method="ward")
    return [fcluster(links, t=max(1, count), criterion="maxclust").astype(np.int64) - 1 for count in counts]


def build_tree(theme_ids: Sequence[int], centroids: np.ndarray, sizes: Sequence[int],
               previous: Sequence[TreeNode] = (), next_numbers: Mapping[str, int] | None = None,
               areas: int | None = None) -> list[TreeNode]:
    """The tree's nodes (unnamed), parents before children, largest first among siblings.

    `previous` is the last published tree: an area or group keeps its number when a two-way
    majority of its themes carry over; new ones are numbered from `next_numbers[kind]` (default:
    one past the highest number in `previous`). `areas` overrides area_count.
    """
    theme_ids = [int(t) for t in theme_ids]
    if not theme_ids:
        return []
    size_of = dict(zip(theme_ids, (int(s) for s in sizes)))
    n_areas = areas if areas is not None else area_count(len(theme_ids))
    n_groups = group_count(len(theme_ids), n_areas)
    cuts = cut_tree(np.asarray(centroids), [n_areas] + ([n_groups] if n_groups else []))
    area_of = _stable_numbers("area", theme_ids, cuts[0], previous, next_numbers)
    group_of = _stable_numbers("group", theme_ids, cuts[1], previous, next_numbers) if n_groups else {}

    members: dict[tuple[str, int], list[int]] = defaultdict(list)
    for theme in theme_ids:
        members[("area", area_of[theme])].append(theme)
        if group_of:
            members[("group", group_of[theme])].append(theme)
    # A group that is a whole area, or a single theme, adds a click and says nothing: dropped.
    areas_size = Counter(area_of.values())
    kept_groups = {key for key, themes in members.items()
                   if key[0] == "group" and 1 < len(themes) < areas_size[area_of[themes[0]]]
                   and len({area_of[t] for t in themes}) == 1}  # Ward cuts nest; checked all the same

    def weight(key: tuple[str, int]) -> tuple[int, int]:
        return (-sum(size_of[t] for t in members[key]), key[1])

    nodes: list[TreeNode] = []
    for area in sorted((k for k in members if k[0] == "area"), key=weight):
        area_id = f"area:{area[1]}"
        nodes.append(TreeNode(area_id, None, 1, "area", _by_size(members[area], size_of)))
        children: list[tuple[str, int]] = sorted({("group", group_of[t]) for t in members[area]
                                                  if ("group", group_of.get(t, -1)) in kept_groups}, key=weight)
        grouped = {t for g in children for t in members[g]}
        for group in children:
            group_id = f"group:{group[1]}"
            nodes.append(TreeNode(group_id, area_id, 2, "group", _by_size(members[group], size_of)))
            nodes += [TreeNode(f"theme:{t}", group_id, 3, "theme", (t,)) for t in _by_size(members[group], size_of)]
        nodes += [TreeNode(f"theme:{t}", area_id, 2, "theme", (t,))
                  for t in _by_size([t for t in members[area] if t not in grouped], size_of)]
    logger.info("tree: %d themes → %d areas, %d middle groups", len(theme_ids), len({area_of[t] for t in theme_ids}),
                len(kept_groups))
    return nodes


def _by_size(themes: Sequence[int], size_of: Mapping[int, int]) -> tuple[int, ...]:
    return tuple(sorted(themes, key=lambda t: (-size_of[t], t)))


def _stable_numbers(kind: str, theme_ids: Sequence[int], clusters: np.ndarray, previous: Sequence[TreeNode],
                    next_numbers: Mapping[str, int] | None) -> dict[int, int]:
    """Theme id → the number of its node of `kind`, matched to the previous tree's numbering."""
    before: dict[str, int | None] = {}
    for node in previous:
        if node.kind == kind:
            before.update({str(t): node.number for t in node.theme_ids})
    start = (next_numbers or {}).get(kind)
    if start is None:
        start = max((n.number + 1 for n in previous if n.kind == kind), default=0)
    match = match_themes(before, {str(t): int(c) for t, c in zip(theme_ids, clusters)}, start)
    return {t: match.theme_of_cluster[int(c)] for t, c in zip(theme_ids, clusters)}


def name_nodes(nodes: Sequence[TreeNode], documents: Mapping[int, Sequence[str]]) -> list[TreeNode]:
    """Extractive names for parents: c-TF-IDF keywords of their answers against their siblings'
    level (areas against areas, groups against groups). Theme leaves keep an empty label: the
    views show the theme's own label."""
    named = {n.node_id: n for n in nodes}
    for kind in ("area", "group"):
        parents = [n for n in nodes if n.kind == kind]
        if not parents:
            continue
        texts = [[text for t in n.theme_ids for text in documents.get(t, ())] for n in parents]
        for node, keywords in zip(parents, ctfidf_keywords(texts)):
            label = " / ".join(keywords[:WORDS_IN_LABEL]) or "(no keywords)"
            named[node.node_id] = replace(node, label=label, keywords=tuple(keywords), labeller="extractive")
    return [named[n.node_id] for n in nodes]


def node_stats(nodes: Sequence[TreeNode], theme_of_unit: Sequence[int], interview_of_unit: Sequence[str],
               model_of_unit: Sequence[str]) -> list[NodeStat]:
    """Per node: answers and distinct interviews overall (session_model None) and per session
    model (every model of the job, zeros included), with the model's share and prevalence."""
    nodes_of_theme: dict[int, list[str]] = defaultdict(list)
    for node in nodes:
        for theme in node.theme_ids:
            nodes_of_theme[theme].append(node.node_id)
    answers: Counter[tuple[str, str | None]] = Counter()
    interviews: dict[tuple[str, str | None], set[str]] = defaultdict(set)
    model_answers: Counter[str] = Counter(model_of_unit)
    model_interviews: dict[str, set[str]] = defaultdict(set)
    for theme, interview, model in zip(theme_of_unit, interview_of_unit, model_of_unit):
        model_interviews[model].add(interview)
        for node_id in nodes_of_theme.get(int(theme), ()):
            for key in ((node_id, None), (node_id, model)):
                answers[key] += 1
                interviews[key].add(interview)
    stats = []
    for node in nodes:
        stats.append(NodeStat(node.node_id, None, answers[(node.node_id, None)],
                              len(interviews[(node.node_id, None)])))
        for model in sorted(model_answers):
            key = (node.node_id, model)
            stats.append(NodeStat(node.node_id, model, answers[key], len(interviews[key]),
                                  share=answers[key] / model_answers[model],
                                  prevalence=len(interviews[key]) / len(model_interviews[model])))
    return stats


def centroids_of(labels: np.ndarray, vectors: np.ndarray) -> tuple[list[int], np.ndarray, list[int]]:
    """Theme ids (sorted), their mean vectors and their sizes, from per-unit labels (-1 = none)."""
    theme_ids = sorted({int(t) for t in labels if t >= 0})
    if not theme_ids:
        return [], np.zeros((0, vectors.shape[1] if vectors.ndim == 2 else 0)), []
    centroids = np.vstack([vectors[labels == t].mean(axis=0) for t in theme_ids])
    sizes = [int((labels == t).sum()) for t in theme_ids]
    return theme_ids, centroids, sizes
