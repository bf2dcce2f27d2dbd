"""Thin tasks: take a job id, open a connection, run one miner.steps step, queue what follows.

The canvas of a job: analyze (prepare) → group(embed chunk × N) → the last chunk to finish
queues chain(cluster, label, aggregate, understand, publish). Which chunk is last is decided in Postgres,
not by a chord counter in Redis, so a Redis restart can't lose it; a step lost anyway (a message
dropped with Redis, a worker killed between commit and enqueue) is re-driven by the stall
watchdog or `miner jobs retry`, and finds the steps already done.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from functools import cache

import kombu.exceptions
import psycopg
import redis.exceptions
from celery import Task, chain, group
from celery.exceptions import Ignore

from miner import components, db, schedule, steps
from miner import repository_runs as runs
from miner import repository_reporting
from workers.app import app, database_url, settings

logger = logging.getLogger(__name__)

# Worth another try: the database or the broker went away for a moment.
TRANSIENT = (psycopg.OperationalError, kombu.exceptions.OperationalError, redis.exceptions.ConnectionError,
             ConnectionError, TimeoutError)


@cache
def _components() -> steps.Components:
    """Loaded once per worker process: the embedding model is the slow part."""
    from miner.label import ExtractiveLabeller
    from miner.nightly import NightlyParams

    return steps.Components(
        embedder=components.embedder_from_settings(settings),
        clusterer=components.clusterer_from_settings(settings),
        labeller=ExtractiveLabeller(),
        llm_client=components.llm_client_from_settings(settings),
        llm_options=components.llm_options_from_settings(settings),
        label_options=components.label_options_from_settings(settings),
        nightly=NightlyParams(),
        embed_chunk=settings.embed_chunk,
    )


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
                steps.mark_failed(conn, job_id, exc)
        except psycopg.Error:
            logger.exception("job %s: could not record the failure", job_id)


@contextmanager
def step_connection(job_id: str):
    """A connection for one step; a cancelled job or a step busy elsewhere ends the task quietly."""
    try:
        with db.connect(database_url, application_name="miner-worker") as conn:
            yield conn
    except (steps.JobCancelled, steps.StepBusy) as exc:
        logger.info("job %s: %s", job_id, exc)
        raise Ignore() from exc


def tail_chain(job_id: str):
    return chain(cluster.si(job_id), label.si(job_id), aggregate.si(job_id), understand.si(job_id), publish.si(job_id))


def continue_job(conn: psycopg.Connection, job_id: str) -> str:
    """Queue the job's first unfinished step(s); returns which."""
    step, chunks = steps.first_unfinished(conn, job_id)
    if step == "prepare":
        analyze.delay(job_id)
    elif step == "embed":
        group(embed.si(job_id, chunk) for chunk in chunks).apply_async()
    elif step != "done":
        tail = {"cluster": tail_chain(job_id),
                "label": chain(label.si(job_id), aggregate.si(job_id), understand.si(job_id), publish.si(job_id)),
                "aggregate": chain(aggregate.si(job_id), understand.si(job_id), publish.si(job_id)),
                "understand": chain(understand.si(job_id), publish.si(job_id)), "publish": publish.si(job_id)}
        tail[step].apply_async()
    return step


@app.task(name="miner.analyze", base=StepTask, bind=True)
def analyze(self, job_id: str) -> dict:
    """Start (or resume) a job: fix its units, then fan the embedding out."""
    with step_connection(job_id) as conn:
        repository_reporting.set_initial_threshold(conn, db.migrate(conn), settings.min_interviews_per_cell)
        conn.commit()
        plan = steps.prepare(conn, job_id, _components())
        continue_job(conn, job_id)
        return {"chunks": plan["chunks"]}


@app.task(name="miner.embed", base=StepTask)
def embed(job_id: str, chunk: int) -> dict:
    """Embed one chunk; whoever finishes the last chunk queues the rest of the job."""
    with step_connection(job_id) as conn:
        detail = steps.embed_chunk(conn, job_id, chunk, _components())
        # Under the job's row lock, so two chunks finishing together see each other.
        with conn.transaction():
            runs.lock_job(conn, job_id)
            step, _ = steps.first_unfinished(conn, job_id)
        if step == "cluster":
            tail_chain(job_id).apply_async()
        return detail


@app.task(name="miner.cluster", base=StepTask)
def cluster(job_id: str) -> dict:
    with step_connection(job_id) as conn:
        return steps.cluster(conn, job_id, _components())


@app.task(name="miner.label", base=StepTask)
def label(job_id: str) -> dict:
    with step_connection(job_id) as conn:
        return steps.label(conn, job_id, _components())


@app.task(name="miner.aggregate", base=StepTask)
def aggregate(job_id: str) -> dict:
    with step_connection(job_id) as conn:
        return steps.aggregate(conn, job_id, _components())


@app.task(name="miner.understand", base=StepTask)
def understand(job_id: str) -> dict:
    with step_connection(job_id) as conn:
        return steps.understand(conn, job_id, _components())


@app.task(name="miner.publish", base=StepTask)
def publish(job_id: str) -> dict:
    with step_connection(job_id) as conn:
        return steps.publish(conn, job_id)


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
        for job_id in runs.stalled_jobs(conn, settings.stall_seconds):
            runs.touch_job(conn, job_id)
            conn.commit()
            resumed.append(f"{job_id}:{continue_job(conn, job_id)}")
    if resumed:
        logger.warning("watchdog: re-driven %s", resumed)
    return resumed
