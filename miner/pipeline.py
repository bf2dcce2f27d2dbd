"""The analysis job in one process: the steps of miner.steps in order.

Workers run the same steps as separate tasks (workers/tasks.py); this is the short path for
notebooks, tests and `miner analyze --inline`.
"""

from __future__ import annotations

import logging

import psycopg

from miner import steps
from miner.steps import Components, JobCancelled, NoUnitsError  # noqa: F401  (the public names)

logger = logging.getLogger(__name__)


def run_job(conn: psycopg.Connection, job_id: str, components: Components) -> dict:
    """Run (or resume) a job to the end; marks it failed and re-raises on error."""
    try:
        plan = steps.prepare(conn, job_id, components)
        for chunk in range(plan["chunks"]):
            steps.embed_chunk(conn, job_id, chunk, components)
        steps.cluster(conn, job_id, components)
        steps.label(conn, job_id, components)
        steps.aggregate(conn, job_id, components)
        steps.understand(conn, job_id, components)
        return steps.publish(conn, job_id)
    except JobCancelled:
        raise
    except Exception as exc:
        steps.mark_failed(conn, job_id, exc)
        raise
