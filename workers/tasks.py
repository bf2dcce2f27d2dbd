"""Thin tasks: take a job id, open a connection, call one miner.pipeline step."""

from __future__ import annotations

from functools import cache

import psycopg

from miner import components, db, pipeline
from workers.app import app, database_url, settings


@cache
def _components() -> pipeline.Components:
    """Loaded once per worker process: the embedding model is the slow part."""
    from miner.label import ExtractiveLabeller

    return pipeline.Components(
        embedder=components.embedder_from_settings(settings),
        clusterer=components.clusterer_from_settings(settings),
        labeller=ExtractiveLabeller(),
    )


@app.task(name="miner.analyze", autoretry_for=(psycopg.OperationalError,), retry_backoff=True, max_retries=5)
def analyze(job_id: str) -> dict[str, int]:
    """Run one analysis job end to end."""
    with db.connect(database_url) as conn:
        db.migrate(conn)
        return pipeline.run_job(conn, job_id, _components())
