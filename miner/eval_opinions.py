"""`miner eval opinions`: score opinion units → embed → cluster → stance on texts with gold
``category:polarity`` pairs (format of MAMS ACSA, ../shared/data/mams_acsa_*.csv).

Scoring (the data README's): each theme is mapped to the gold category its units' texts
carry most often (many themes may map to one category; a tie goes to the first category in
alphabetical order, so a run does not depend on Python's string hashing); a text's predicted
pairs are (category of its unit's theme, unit's stance), one polarity per category: with a
stance estimator that scores units, the stance of the mean score of the text's units there (a
unit that takes a side outweighs a neutral one beside it; measured in BENCHMARKS.md §
Opinions), else the units' most common stance (a tie is "mixed", which matches no gold
polarity). Micro P/R/F1 over (text, category, polarity) triples; category-F1 over (text,
category); polarity accuracy over categories found in both.

:func:`fit_stance` (``--stance-train``, opt-in) fits a supervised :class:`~miner.stance.FittedStance`
on a labelled file of the same format first; the default stance is fitted on nothing.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from miner.eval_clusters import csv_rows
from miner.protocols import Clusterer, Embedder
from miner.opinion_units import Span, split_aspect_spans
from miner.stance import FittedStance, stance_of_score

logger = logging.getLogger(__name__)

POLARITIES = ("positive", "negative", "neutral")


class OpinionDataError(ValueError):
    """The CSV lacks a column or a row's gold pairs are malformed."""


@dataclass(frozen=True)
class OpinionTexts:
    texts: list[str]
    gold: list[frozenset[tuple[str, str]]]  # per text: {(category, polarity)}


def read_opinion_csv(path: Path, text_column: str = "text", opinions_column: str = "opinions") -> OpinionTexts:
    """Texts and their gold ``category:polarity;…`` sets from a CSV with a header row."""
    texts, gold = [], []
    for row_number, row in csv_rows(path, text_column, opinions_column, OpinionDataError):
        pairs = set()
        for item in (row[opinions_column] or "").split(";"):
            if not item.strip():
                continue
            category, sep, polarity = item.strip().rpartition(":")
            if not sep or not category or polarity not in POLARITIES:
                raise OpinionDataError(f"{path}: row {row_number} {opinions_column!r}: {item.strip()!r} is not "
                                       f"category:polarity with polarity one of {', '.join(POLARITIES)}")
            pairs.add((category, polarity))
        texts.append(row[text_column])
        gold.append(frozenset(pairs))
    return OpinionTexts(texts, gold)


def _f1(predicted: set, gold: set) -> tuple[float, float, float]:
    hits = len(predicted & gold)
    precision = hits / len(predicted) if predicted else 0.0
    recall = hits / len(gold) if gold else 0.0
    return precision, recall, 2 * precision * recall / (precision + recall) if hits else 0.0


def theme_categories(gold: Sequence[frozenset[tuple[str, str]]], text_index: Sequence[int],
                     themes: Sequence[int]) -> dict[int, str]:
    """Each theme's gold category: the one its units' texts carry most (a tie to the alphabetically first)."""
    cooccur: dict[int, Counter] = defaultdict(Counter)
    for i, theme in zip(text_index, themes):
        for category, _ in gold[i]:
            cooccur[theme][category] += 1
    return {t: min(c.items(), key=lambda item: (-item[1], item[0]))[0] for t, c in cooccur.items() if c}


def score_opinions(gold: Sequence[frozenset[tuple[str, str]]], text_index: Sequence[int],
                   themes: Sequence[int], stances: Sequence[str], scores: Sequence[float] | None = None,
                   threshold: float | None = None) -> dict[str, float]:
    """Pair-F1, category-F1 and polarity accuracy of units (text index, theme, stance) against
    per-text gold pairs; themes mapped many-to-one to their most co-occurring gold category.
    With `scores` (each unit's stance score) and `threshold`, a text's polarity on a category
    is that of its units' mean score there; without, their majority stance."""
    category_of = theme_categories(gold, text_index, themes)
    votes: dict[tuple[int, str], Counter] = defaultdict(Counter)
    totals: dict[tuple[int, str], list[float]] = defaultdict(list)
    for unit, (i, theme, stance) in enumerate(zip(text_index, themes, stances)):
        if theme in category_of:
            votes[(i, category_of[theme])][stance] += 1
            if scores is not None:
                totals[(i, category_of[theme])].append(float(scores[unit]))
    predicted: dict[tuple[int, str], str] = {}
    for key, counter in votes.items():
        if scores is not None and threshold is not None:
            predicted[key] = stance_of_score(float(np.mean(totals[key])), threshold)
            continue
        (top, n), *rest = counter.most_common(2)
        predicted[key] = "mixed" if rest and rest[0][1] == n else top
    gold_pairs = {(i, c, p) for i, pairs in enumerate(gold) for c, p in pairs}
    gold_polarity = {(i, c): p for i, c, p in gold_pairs}
    pred_pairs = {(i, c, p) for (i, c), p in predicted.items()}
    p, r, pair_f1 = _f1(pred_pairs, gold_pairs)
    _, _, category_f1 = _f1(set(predicted), set(gold_polarity))
    found = [key for key in predicted if key in gold_polarity]
    polarity_accuracy = sum(predicted[k] == gold_polarity[k] for k in found) / len(found) if found else 0.0
    return {"pair_precision": p, "pair_recall": r, "pair_f1": pair_f1, "category_f1": category_f1,
            "polarity_accuracy": polarity_accuracy}


def evaluate_opinions(data: OpinionTexts, embedder: Embedder, clusterer: Clusterer, stance,
                      split: Callable[[str], list[Span]] = split_aspect_spans,
                      aspect: bool = True) -> dict[str, float | int]:
    """Split, embed, cluster and give each unit a stance as the product does; the scores
    plus units, themes and seconds. `stance` has ``stances(texts, vectors) -> list[str]``
    (and, to score a text's category by its units' mean, ``scores(texts, vectors)`` and
    ``threshold``);
    `split` (answer → spans): aspect-level units (:func:`~miner.opinion_units.split_aspect_spans`,
    the clause units cut again at "and", "with", subordinate clauses and parentheses: MAMS
    sentences judge several aspects per clause; BENCHMARKS.md § Opinions) unless a benchmark
    swaps it. With
    `aspect` (and a stance that has ``aspect_text``) units are clustered by their text without
    sentiment words; the stance still reads the whole unit."""
    started = time.perf_counter()
    text_index, unit_texts = _units(data, split)
    vectors, themes = _embed_and_cluster(unit_texts, embedder, clusterer, stance, aspect)
    unit_scores = stance.scores(unit_texts, vectors) if hasattr(stance, "scores") and unit_texts else None
    threshold = getattr(stance, "threshold", None) if unit_scores is not None else None
    stances = ([stance_of_score(s, threshold) for s in unit_scores] if threshold is not None
               else stance.stances(unit_texts, vectors))
    seconds = time.perf_counter() - started
    scores = score_opinions(data.gold, text_index, themes.tolist(), stances, unit_scores, threshold)
    result = {"pair_f1": round(scores["pair_f1"], 4), "category_f1": round(scores["category_f1"], 4),
              "polarity_accuracy": round(scores["polarity_accuracy"], 4), "units": len(unit_texts),
              "themes": len({t for t in themes.tolist() if t >= 0}), "seconds": round(seconds, 2)}
    logger.info("eval opinions: %d texts → %s", len(data.texts), result)
    return result


def _units(data: OpinionTexts, split: Callable[[str], list[Span]]) -> tuple[list[int], list[str]]:
    text_index, unit_texts = [], []
    for i, text in enumerate(data.texts):
        for span in split(text):
            text_index.append(i)
            unit_texts.append(text[span.start:span.end])
    return text_index, unit_texts


def _embed_and_cluster(unit_texts: list[str], embedder: Embedder, clusterer: Clusterer, stance,
                       aspect: bool) -> tuple[np.ndarray, np.ndarray]:
    vectors = embedder.embed(unit_texts) if unit_texts else np.zeros((0, 1), dtype=np.float32)
    if aspect and hasattr(stance, "aspect_text") and unit_texts:
        themes = clusterer.fit(embedder.embed([stance.aspect_text(t) for t in unit_texts]))
    else:
        themes = clusterer.fit(vectors)
    return vectors, themes


def fit_stance(train: OpinionTexts, embedder: Embedder, clusterer: Clusterer, stance: FittedStance | None = None,
               split: Callable[[str], list[Span]] = split_aspect_spans) -> FittedStance:
    """A :class:`~miner.stance.FittedStance` fitted on labelled texts through the path
    :func:`evaluate_opinions` runs: the texts' units are split, embedded and clustered as there, each
    theme mapped to its gold category (:func:`theme_categories`), and a unit whose theme's category is
    in its text's gold takes that category's polarity — the polarity the scorer will compare it
    with; any other unit may be any of its text's gold polarities (each weighted 1/n). On MAMS
    validation these labels beat labelling a unit by the gold category nearest its vector
    (BENCHMARKS.md § Opinions)."""
    stance = stance or FittedStance()
    text_index, unit_texts = _units(train, split)
    if not unit_texts:
        raise OpinionDataError("no units to fit a stance on")
    vectors, themes = _embed_and_cluster(unit_texts, embedder, clusterer, stance, aspect=True)
    category_of = theme_categories(train.gold, text_index, themes.tolist())
    possible: list[set[str]] = []
    for i, theme in zip(text_index, themes.tolist()):
        polarity = dict(train.gold[i])
        category = category_of.get(theme)
        possible.append({polarity[category]} if category in polarity else set(polarity.values()))
    try:
        return stance.fit(vectors, possible)
    except ValueError as exc:
        raise OpinionDataError(str(exc)) from exc


def opinion_clusterer(seed: int) -> Clusterer:
    """The clusterer opinion units get (see :data:`OPINION_MCS_FRACTION`)."""

    return OpinionClusterer(seed)


# Opinion units are many per answer and short, so HDBSCAN's min_cluster_size is set from the
# number of units (a fraction, at least 5) rather than the cluster module's default rule, its
# "leaf" selection keeps fine clusters (on aspect vectors "eom" collapsed to 2), and HDBSCAN's
# own clusters are kept (outliers to the nearest centroid) instead of the Ward re-cut; measured
# on MAMS validation in BENCHMARKS.md § Opinions. None → the cluster module's default.
OPINION_MCS_FRACTION: float | None = 0.015


# A cluster holding more than this share of the units is clustered again on its own, once (its
# parts keep the same smallest cluster size). None: off. Measured on HALIE in memory
# (benchmarks/bench_halie_variants.py: 8 aligned cells at 0.2 vs 6 off) and through the job
# (bench_halie_study.py: 7 vs 5); the sample studies at 300 unchanged. Not yet the default
# (BENCHMARKS.md § HALIE crossword as a study).
OPINION_MAX_SHARE: float | None = None


class OpinionClusterer:
    """UMAP + HDBSCAN from miner.cluster, min_cluster_size from the unit count, no Ward re-cut."""

    name = "umap-hdbscan-opinions"

    def __init__(self, seed: int = 42, fraction: float | None = OPINION_MCS_FRACTION, selection: str = "leaf",
                 max_share: float | None = None):
        self.seed, self.fraction, self.selection, self.max_share = seed, fraction, selection, max_share

    def fit(self, vectors: np.ndarray) -> np.ndarray:
        from miner.cluster import ClusterParams, cluster_vectors

        mcs = None if self.fraction is None else max(5, round(self.fraction * len(vectors)))
        params = ClusterParams(seed=self.seed, min_cluster_size=mcs, refine="none",
                               cluster_selection_method=self.selection)
        labels = cluster_vectors(vectors, params)
        max_share = self.max_share if self.max_share is not None else OPINION_MAX_SHARE
        if max_share is None:
            return labels
        next_id = int(labels.max()) + 1
        for cluster in np.unique(labels[labels >= 0]):
            members = np.where(labels == cluster)[0]
            if len(members) > max_share * len(vectors):
                parts = cluster_vectors(vectors[members], params)
                for part in np.unique(parts[parts > 0]):
                    labels[members[parts == part]] = next_id
                    next_id += 1
        return labels
