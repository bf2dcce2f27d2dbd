"""`miner eval ratings`: measure inferred ratings against people's own.

Without gold, the study's explicit ratings are the target and are hidden from the estimator:
the answers that state a number are left out of what it reads (and of what an LLM is sent).
With gold, a CSV's `id` column is joined to each log's own `id` (interviews.external_id) and
one dimension is compared with one column. Reported: Spearman per dimension with n, and
Kendall's tau between the per-model means (does the estimator rank the models as people do).
A dimension with no answers of its own in an interview is estimated by that interview's
`overall` score.
"""

from __future__ import annotations

import csv
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from miner import repository
from miner.protocols import Embedder
from miner.dimensions import DIMENSIONS, OTHER, PrototypeClassifier, classify_questions
from miner.embed import answer_vectors, embed_units
from miner.eval_clusters import not_utf8
from miner.opinion_job import opinion_units
from miner.ratings import AnchorSentiment, explicit_ratings, rate_interviews
from miner.records import Rating, Unit
from miner.units import split_units

logger = logging.getLogger(__name__)


class GoldDataError(ValueError):
    """The gold CSV lacks the id or rating column, or matches no interview of the study."""


@dataclass(frozen=True)
class RatingEvaluation:
    dimensions: dict[str, dict[str, Any]]  # name → {"spearman": r, "n": n}
    kendall_tau: float | None
    models: dict[str, dict[str, float]] = field(default_factory=dict)  # model → inferred / gold means, n
    estimator: str = ""
    target: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"dimensions": self.dimensions, "kendall_tau": self.kendall_tau}


def read_gold(path: Path, column: str, id_column: str = "id") -> dict[str, float]:
    """external id → rating from a CSV with a header row; blank ratings are skipped."""
    # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark, which would stick to the `id` column's name.
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        gold = {}
        try:
            missing = [c for c in (id_column, column) if c not in (reader.fieldnames or [])]
            if missing:
                raise GoldDataError(f"{path}: no column {', '.join(missing)} (columns: {reader.fieldnames})")
            for row_number, row in enumerate(reader, start=2):
                value = (row[column] or "").strip()
                if value:
                    try:
                        gold[row[id_column].strip()] = float(value)
                    except ValueError as exc:
                        raise GoldDataError(f"{path}: row {row_number}: {column}={value!r} is not a number") from exc
        except UnicodeDecodeError as exc:
            raise GoldDataError(not_utf8(path, exc)) from None
    return gold


def _vectors(conn: psycopg.Connection, units: list[Unit], embedder: Embedder) -> np.ndarray:
    cached = repository.load_embeddings(conn, embedder.name, (u.answer_hash for u in units))
    return embed_units(units, embedder, cached,
                       on_chunk=lambda new, done, total: repository.save_embeddings(conn, embedder.name, new))


def _spearman(pairs: list[tuple[float, float]]) -> float | None:
    from scipy.stats import spearmanr

    if len(pairs) < 3 or len({p for p, _ in pairs}) < 2 or len({g for _, g in pairs}) < 2:
        return None
    return round(float(spearmanr(*zip(*pairs)).statistic), 4)


def evaluate_ratings(conn: psycopg.Connection, study: str, embedder: Embedder, gold: dict[str, float] | None = None,
                     dimension: str = "overall", llm=None, scrub: bool = True) -> RatingEvaluation:
    """Compare inferred ratings with the study's explicit ones (hidden) or with `gold` (external id → rating)."""
    if dimension not in (*DIMENSIONS, OTHER):  # every interview would fall back to `overall`, named otherwise
        raise GoldDataError(f"unknown dimension {dimension!r}; choose from {', '.join((*DIMENSIONS, OTHER))}")
    interviews = repository.load_interviews(conn, study)
    units = split_units(interviews)
    if not units:
        raise GoldDataError(f"study {study!r} has no answers; run `miner ingest` first")
    # The answers' vectors as the job's understand step makes them (miner.embed.answer_vectors), from
    # the offline opinion units (a job with an LLM takes the LLM's quotes instead).
    vectors = answer_vectors(units, opinion_units(units)[0], lambda texts: _vectors(conn, texts, embedder))
    by_question = classify_questions([u.question for u in units], PrototypeClassifier(embedder))
    dimensions = {u.unit_id: by_question[u.question] for u in units}
    estimator = AnchorSentiment(embedder)
    model_of = {i.interview_id: i.session_model for i in interviews}

    if gold is None:
        stated = explicit_ratings(units, dimensions)
        if not stated:
            raise GoldDataError(f"study {study!r} has no explicit ratings; pass --gold FILE.csv")
        targets = {(r.interview_id, r.dimension): r.score for r in stated}
        hidden = {r.unit_id for r in stated}
        inferred = _infer(units, dimensions, vectors, estimator, llm, hidden=hidden, use_explicit=False, scrub=scrub)
        target = "explicit ratings (hidden from the estimator)"
    else:
        external = {i.interview_id: i.external_id for i in interviews}
        targets = {(i, dimension): gold[e] for i, e in external.items() if e is not None and e in gold}
        if not targets:
            raise GoldDataError(f"no interview of study {study!r} has an external id found in the gold file")
        inferred = _infer(units, dimensions, vectors, estimator, llm, hidden=set(), use_explicit=True, scrub=scrub)
        target = "gold file"

    pairs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    per_model: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for (interview_id, dim), truth in sorted(targets.items()):
        scores = inferred.get(interview_id, {})
        guess = scores.get(dim, scores.get("overall"))
        if guess is None:
            continue
        pairs[dim].append((guess, truth))
        per_model[model_of[interview_id]].append((guess, truth))
    report = {dim: {"spearman": _spearman(p), "n": len(p)} for dim, p in sorted(pairs.items())}
    models = {m: {"inferred": round(float(np.mean([g for g, _ in p])), 4),
                  "gold": round(float(np.mean([t for _, t in p])), 4), "n": len(p)} for m, p in sorted(per_model.items())}
    tau = None
    if len(models) >= 2:
        from scipy.stats import kendalltau

        value = kendalltau([m["inferred"] for m in models.values()], [m["gold"] for m in models.values()]).statistic
        tau = None if np.isnan(value) else round(float(value), 4)
    name = estimator.name if llm is None else f"llm:{llm.options.model} + {estimator.name}"
    logger.info("eval ratings: %s vs %s: %s, kendall tau %s", name, target, report, tau)
    return RatingEvaluation(report, tau, models, name, target)


def _infer(units: list[Unit], dimensions, vectors: np.ndarray, estimator: AnchorSentiment, llm,
           hidden: set[str], use_explicit: bool, scrub: bool = True) -> dict[str, dict[str, float]]:
    """interview → dimension → the service's score, never reading the `hidden` answers."""
    keep = [i for i, u in enumerate(units) if u.unit_id not in hidden]
    shown = [units[i] for i in keep]
    ratings: list[Rating]
    ratings, _ = rate_interviews(shown, dimensions, vectors[keep], estimator, use_explicit=use_explicit)
    if llm is not None:
        from miner.llm_rate import rate_with_llm

        rated = rate_with_llm(shown, llm, scrub=scrub)
        ratings = [r for r in ratings if r.interview_id not in rated]
        ratings += [r for result in rated.values() for r in result.ratings]
    inferred: dict[str, dict[str, float]] = defaultdict(dict)
    for rating in ratings:
        inferred[rating.interview_id][rating.dimension] = rating.score
    return inferred
