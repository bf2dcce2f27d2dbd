"""The analysis job in one process: every step of miner.steps.STEPS in order.

Workers run the same steps as separate tasks (workers/tasks.py); this is the short path for
notebooks, tests and benchmarks.
"""

from __future__ import annotations

import logging

import psycopg

from miner import jobs
from miner.components import Components
from miner.steps import STEPS, JobCancelled, NoUnitsError  # noqa: F401  (the public names)

logger = logging.getLogger(__name__)


def run_job(conn: psycopg.Connection, job_id: str, components: Components) -> dict:
    """Run (or resume) a job to the end; returns its counts. Marks it failed and re-raises on error."""
    try:
        detail: dict = {}
        for step in STEPS:
            for part in jobs.parts_of(conn, job_id, step):
                detail = jobs.run_step(conn, job_id, step.name, components, part)
        return detail
    except JobCancelled:
        raise
    except Exception as exc:
        jobs.mark_failed(conn, job_id, exc)
        raise
