"""Thin tasks: take a job id, open a connection, run one step of miner.steps.STEPS, queue what follows.

A job is `miner.analyze` (its first step), then one `miner.step` task per step, each queuing the
job's first unfinished step when it is done; a fanned-out step is a group of tasks, one per part, and
whichever part finishes last queues the next step. Which is last is decided in Postgres, not by a
chord counter in Redis, so a Redis restart can't lose it; a step lost anyway (a message dropped with
Redis, a worker killed between commit and enqueue) is re-driven by the stall watchdog or `miner jobs
retry`, and finds the steps already done.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from functools import cache

import kombu.exceptions
import psycopg
import redis.exceptions
from celery import Task, group
from celery.exceptions import Ignore

from miner import db, jobs, schedule
from miner import repository_jobs, repository_reporting
from miner.components import Components
from miner.steps import STEPS
from workers.app import app, database_url, settings

logger = logging.getLogger(__name__)

# Worth another try: the database or the broker went away for a moment.
TRANSIENT = (psycopg.OperationalError, kombu.exceptions.OperationalError, redis.exceptions.ConnectionError,
             ConnectionError, TimeoutError)


@cache
def _components() -> Components:
    """Loaded once per worker process: the embedding model is the slow part."""
    return Components.from_settings(settings)


class StepTask(Task):
    """Retries transient errors with backoff; a final failure marks the job failed."""

    autoretry_for = TRANSIENT
    retry_backoff = 2
    retry_backoff_max = 60
    retry_jitter = True
    max_retries = 8

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        job_id = args[0] if args else kwargs.get("job_id")
        try:
            with db.connect(database_url) as conn:
                jobs.mark_failed(conn, job_id, exc)
        except psycopg.Error:
            logger.exception("job %s: could not record the failure", job_id)


@contextmanager
def step_connection(job_id: str):
    """A connection for one step; a cancelled job or a step busy elsewhere ends the task quietly."""
    try:
        with db.connect(database_url, application_name="miner-worker") as conn:
            yield conn
    except (jobs.JobCancelled, jobs.StepBusy) as exc:
        logger.info("job %s: %s", job_id, exc)
        raise Ignore() from exc


def continue_job(conn: psycopg.Connection, job_id: str, after: str | None = None) -> str:
    """Queue the job's first unfinished step (all its missing parts, if fanned out); returns its name.

    `after` names the step just finished: while parts of that same fanned-out step are missing, they
    are queued already and nothing is sent."""
    # Under the job's row lock, so two parts finishing together see each other.
    with conn.transaction():
        repository_jobs.lock_job(conn, job_id)
        name, missing = jobs.first_unfinished(conn, job_id)
    if name == jobs.DONE or name == after:
        return name
    if name == STEPS[0].name:
        analyze.delay(job_id)
    elif jobs.step_named(name).fan_out:
        group(step.si(job_id, name, part) for part in missing).apply_async()
    else:
        step.delay(job_id, name)
    return name


@app.task(name="miner.analyze", base=StepTask)
def analyze(job_id: str) -> dict:
    """Start (or resume) a job: its first step, then whatever is unfinished."""
    with step_connection(job_id) as conn:
        repository_reporting.set_initial_threshold(conn, db.migrate(conn), settings.min_interviews_per_cell)
        conn.commit()
        detail = jobs.run_step(conn, job_id, STEPS[0].name, _components())
        continue_job(conn, job_id, after=STEPS[0].name)
        return detail


@app.task(name="miner.step", base=StepTask)
def step(job_id: str, name: str, part: int | None = None) -> dict:
    """One step (or one part of a fanned-out step) of a job; then queue the next."""
    with step_connection(job_id) as conn:
        detail = jobs.run_step(conn, job_id, name, _components(), part)
        continue_job(conn, job_id, after=name)
        return detail


@app.task(name="miner.nightly", autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def nightly(force: bool = False) -> list[str]:
    """The beat entry: a nightly job per study with new interviews (the same call as `miner nightly`)."""
    with db.connect(database_url) as conn:
        db.migrate(conn)
        created = schedule.create_nightly_jobs(conn, force=force)
    for _, job_id in created:
        analyze.delay(job_id)
    return [job_id for _, job_id in created]


@app.task(name="miner.watchdog", autoretry_for=TRANSIENT, retry_backoff=True, max_retries=3)
def watchdog() -> list[str]:
    """Re-drive jobs with no step activity for MINER_STALL_SECONDS from their first unfinished step."""
    resumed = []
    with db.connect(database_url) as conn:
        for job_id in repository_jobs.stalled_jobs(conn, settings.stall_seconds):
            repository_jobs.touch_job(conn, job_id)
            conn.commit()
            resumed.append(f"{job_id}:{continue_job(conn, job_id)}")
    if resumed:
        logger.warning("watchdog: re-driven %s", resumed)
    return resumed
