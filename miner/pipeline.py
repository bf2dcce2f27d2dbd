"""The analysis job: the stages in order, each loading its rows and saving its output.

Progress is committed to the job's row as it goes, so `miner analyze --wait` and
`miner jobs` can follow it from any process.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import psycopg

from miner import repository
from miner.components import Clusterer, Embedder
from miner.embed import embed_units
from miner.label import ExtractiveLabeller, label_clusters
from miner.themes import build_themes, members_by_theme, model_stats, number_clusters
from miner.units import split_units

logger = logging.getLogger(__name__)

# Share of the progress bar each stage takes, in order.
PROGRESS = {"units": 0.05, "embed": 0.70, "cluster": 0.90, "label": 0.97, "publish": 1.0}


class NoUnitsError(RuntimeError):
    """The study has no answers to analyse."""


@dataclass(frozen=True)
class Components:
    """What a job needs besides the database."""

    embedder: Embedder
    clusterer: Clusterer
    labeller: ExtractiveLabeller


def _progress(conn: psycopg.Connection, job_id: str, stage: str, progress: float) -> None:
    repository.update_job(conn, job_id, stage=stage, progress=progress)
    conn.commit()


def run_job(conn: psycopg.Connection, job_id: str, components: Components) -> dict[str, int]:
    """Run an analysis job to the end; marks it failed (and re-raises) on error."""
    job = repository.get_job(conn, job_id)
    if job is None:
        raise LookupError(f"no job {job_id}")
    repository.update_job(conn, job_id, status="running", stage="units", progress=0.0)
    conn.commit()
    started = time.perf_counter()
    try:
        counts = _run_stages(conn, job_id, job.study, components)
    except Exception as exc:
        conn.rollback()
        repository.update_job(conn, job_id, status="failed", error=f"{type(exc).__name__}: {exc}")
        conn.commit()
        raise
    counts["seconds"] = round(time.perf_counter() - started, 2)
    repository.update_job(conn, job_id, status="succeeded", stage="done", progress=1.0, counts=counts)
    conn.commit()
    logger.info("job %s: succeeded %s", job_id, counts)
    return counts


def _run_stages(conn: psycopg.Connection, job_id: str, study: str, components: Components) -> dict[str, int]:
    interviews = repository.load_interviews(conn, study)
    units = split_units(interviews)
    if not units:
        raise NoUnitsError(f"study {study!r} has no answers to analyse; run `miner ingest` first")
    repository.save_units(conn, units)
    _progress(conn, job_id, "embed", PROGRESS["units"])

    embedder = components.embedder
    cached = repository.load_embeddings(conn, embedder.name, (u.answer_hash for u in units))
    span = PROGRESS["embed"] - PROGRESS["units"]

    def save_chunk(new: dict[str, np.ndarray], done: int, total: int) -> None:
        repository.save_embeddings(conn, embedder.name, new)
        _progress(conn, job_id, "embed", PROGRESS["units"] + span * done / total)

    vectors = embed_units(units, embedder, cached, on_chunk=save_chunk)
    embedded = len({u.answer_hash for u in units} - cached.keys())
    _progress(conn, job_id, "cluster", PROGRESS["embed"])

    labels = number_clusters(components.clusterer.fit(vectors))
    members = members_by_theme(labels)
    outliers = int((labels < 0).sum())
    logger.info("cluster: %d units → %d clusters, %d outliers", len(units), len(members), outliers)
    _progress(conn, job_id, "label", PROGRESS["cluster"])

    documents = [[units[i].answer for i in indices] for indices in members.values()]
    themes = build_themes(units, vectors, labels, label_clusters(documents, components.labeller))
    stats = model_stats(units, labels)
    _progress(conn, job_id, "publish", PROGRESS["label"])

    assignments = {u.unit_id: (int(label) if label >= 0 else None) for u, label in zip(units, labels)}
    repository.save_results(conn, job_id, themes, assignments, stats)
    return {"interviews": len(interviews), "units": len(units), "embedded": embedded,
            "themes": len(themes), "outliers": outliers}
