"""Understanding stage: from answer units to dimensions, ratings, quality verdicts and per-model
statistics. Runs after themes, on the units, vectors and theme labels the job already has.

Order: dimensions (prototypes, or the LLM's) → explicit ratings → inferred ratings (one LLM call
per interview, or the offline anchor estimator) → quality verdicts → statistics, leaving out
low-quality interviews unless `include_low_quality`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from miner.protocols import Embedder
from miner.dimensions import (DEFAULT_THRESHOLD, DimensionLabel, PrototypeClassifier, classify_questions,
                              load_prototypes, question_sentences)
from miner.quality import QualityOptions, judge_quality
from miner.ratings import AnchorSentiment, explicit_ratings, load_anchors, rate_interviews
from miner.records import Interview, QualityVerdict, Rating, Unit, UnitInsight
from miner.stats import Statistics, StatsOptions, compute_statistics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnderstandOptions:
    dimension_threshold: float = DEFAULT_THRESHOLD
    include_low_quality: bool = False
    quality: QualityOptions = field(default_factory=QualityOptions)
    stats: StatsOptions = field(default_factory=StatsOptions)
    llm_scrub: bool = True


class _OnceEmbedder:
    """Embeds each distinct text once per job (questions are read by the classifier and the quality
    filter), starting from vectors the caller already has; `new` holds what it had to embed."""

    def __init__(self, embedder: Embedder, known: dict[str, np.ndarray] | None = None):
        self.name, self.embedder = embedder.name, embedder
        self.known: dict[str, np.ndarray] = dict(known or {})
        self.new: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = sorted({t for t in texts if t not in self.known})
        if missing:
            fresh = dict(zip(missing, self.embedder.embed(missing)))
            self.known.update(fresh)
            self.new.update(fresh)
        return np.vstack([self.known[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)


@dataclass(frozen=True)
class Understanding:
    """What the stage produced: rows for repository.add_insights (statistics None unless asked for)."""

    run: dict
    insights: list[UnitInsight]
    ratings: list[Rating]
    verdicts: list[QualityVerdict]
    statistics: Statistics | None
    counts: dict[str, int]
    new_vectors: dict[str, np.ndarray] = field(default_factory=dict)  # texts embedded by this run


def texts_to_embed(units: Sequence[Unit]) -> set[str]:
    """Every text the stage embeds besides answers: questions and their sentences, prototypes, anchors
    (a caller with an embedding cache can look them up first and pass them as `known_vectors`)."""
    texts = {s for question in {u.question for u in units} for s in question_sentences(question)}
    texts.update(t for phrasings in load_prototypes().values() for t in phrasings)
    positive, negative = load_anchors()
    return texts | set(positive) | set(negative)


def understand_interviews(interviews: Sequence[Interview], units: Sequence[Unit], vectors: np.ndarray,
                          labels: np.ndarray, embedder: Embedder, options: UnderstandOptions = UnderstandOptions(),
                          llm=None, known_vectors: dict[str, np.ndarray] | None = None,
                          themed: tuple[Sequence[Unit], np.ndarray] | None = None,
                          rated: dict | None = None, rated_by: str | None = None,
                          with_statistics: bool = True) -> Understanding:
    """Dimensions, ratings, quality verdicts and statistics for one study's units.

    `themed` is what the themes were built from when that is not the answers themselves: the
    opinion units (each naming its answer, `answer_unit_id`) and their theme ids. Theme
    prevalence then counts an interview once per theme, and a unit's sentiment is its answer's.

    Everything but the statistics is per interview. `with_statistics=False` leaves `statistics`
    None: the analysis job understands its interviews in parts, a nightly job its new ones, and
    computes the statistics over the whole study from the stored per-interview rows
    (miner.steps.job_statistics).

    `llm` is a miner.llm.LLM or None; interviews its calls do not deliver are rated offline (its
    failures are outcomes, not exceptions: an exception here is a bug or a database error).
    `rated` (interview id → miner.llm_rate.LLMInterviewRating, by the model `rated_by`) is what an
    earlier call said instead: the job's units step reads each interview once (miner.llm_units).
    """
    embedder = _OnceEmbedder(embedder, known_vectors)
    estimator = AnchorSentiment(embedder)
    classifier = PrototypeClassifier(embedder, threshold=options.dimension_threshold)
    by_question = classify_questions([u.question for u in units], classifier)
    dimensions = {u.unit_id: by_question[u.question] for u in units}
    sources = {u.unit_id: "prototype" for u in units}

    # Offline first: the LLM's answers replace it interview by interview where they arrive.
    ratings, sentiment = rate_interviews(units, dimensions, vectors, estimator)
    llm_judgements: dict[str, str] = {}
    rating_estimator = estimator.name
    if llm is not None and units:
        from miner.llm_rate import rate_with_llm

        rated, rated_by = rate_with_llm(units, llm, scrub=options.llm_scrub), llm.options.model
    if rated:
        ratings = _merge_llm(units, dimensions, sources, ratings, rated)
        llm_judgements = {i: r.quality_reason or "judged low effort" for i, r in rated.items() if r.low_effort}
        rating_estimator = f"llm:{rated_by}" + (" + " + estimator.name if len(rated) < len(
            {u.interview_id for u in units}) else "")

    verdicts = judge_quality(interviews, units, vectors, embedder, estimator.anchor_vectors(), options.quality,
                             llm_judgements)
    excluded = set() if options.include_low_quality else {v.interview_id for v in verdicts if v.low_quality}
    statistics = None
    if with_statistics:
        statistics = compute_statistics(interviews, units, labels, ratings, sentiment, excluded, options.stats,
                                        themed=_themed(units, sentiment, themed))

    insights = [UnitInsight(u.unit_id, dimensions[u.unit_id].dimension, dimensions[u.unit_id].confidence,
                            sources[u.unit_id], round(float(s), 4)) for u, s in zip(units, sentiment)]
    run = {"rating_estimator": rating_estimator, "correction": options.stats.correction,
           "alpha": options.stats.alpha, "low_quality_included": options.include_low_quality,
           "interviews": len(interviews), "excluded": len(excluded)}
    counts = {"ratings": len(ratings), "explicit_ratings": sum(r.source == "explicit" for r in ratings),
              "low_quality": sum(v.low_quality for v in verdicts), "excluded": len(excluded),
              "significant_theme_differences": sum(p.significant for p in statistics.prevalence) if statistics else 0}
    return Understanding(run, insights, ratings, verdicts, statistics, counts, embedder.new)


def _merge_llm(units: Sequence[Unit], dimensions: dict[str, DimensionLabel], sources: dict[str, str],
               offline: list[Rating], rated: dict) -> list[Rating]:
    """For interviews the LLM rated: its dimensions, explicit ratings re-read under them, then its scores."""
    for interview in rated.values():
        for unit_id, label in interview.dimensions.items():
            dimensions[unit_id] = label
            sources[unit_id] = "llm"
    rated_units = [u for u in units if u.interview_id in rated]
    explicit = explicit_ratings(rated_units, dimensions)
    stated = {(r.interview_id, r.dimension) for r in explicit}
    llm_scores = [r for interview in rated.values() for r in interview.ratings
                  if (r.interview_id, r.dimension) not in stated]
    # The LLM's evidence is a quote, not a unit: point at the answer that holds it.
    located = []
    for rating in llm_scores:
        unit_id = next((u.unit_id for u in rated_units if u.interview_id == rating.interview_id and rating.evidence
                        and rating.evidence.casefold() in u.answer.casefold()), None)
        located.append(replace(rating, unit_id=unit_id))
    kept_offline = [r for r in offline if r.interview_id not in rated]
    return kept_offline + explicit + located


def _themed(units: Sequence[Unit], sentiment: np.ndarray, themed: tuple[Sequence[Unit], np.ndarray] | None):
    """(themed units, their theme ids, their answers' sentiment), or None when the answers are themed."""
    if themed is None:
        return None
    by_answer = {u.unit_id: float(s) for u, s in zip(units, sentiment)}
    opinions, labels = themed
    return opinions, labels, np.array([by_answer.get(u.answer_unit_id or u.unit_id, 0.0) for u in opinions])
