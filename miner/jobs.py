"""Running the table of steps (miner.steps.STEPS): each step once, state in Postgres.

A step records itself done in `job_steps` in the same transaction as its rows, so a step delivered
twice (a worker killed before its ack) finds itself done and returns. (The understand step also
commits each of its parts with an `understand:<part>` row, so it resumes where it stopped: miner.steps.)
Readers only see a job once `publish` flips it to succeeded. Resume and progress read the same table
as the runners.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from miner import repository_jobs
from miner.components import Components
from miner.steps import STEPS, JobCancelled, NoUnitsError, Step  # noqa: F401  (the job's errors live with its steps)

logger = logging.getLogger(__name__)

DONE = "done"


class StepBusy(RuntimeError):
    """Another process is running this step of this job right now."""


def step_named(name: str) -> Step:
    for step in STEPS:
        if step.name == name:
            return step
    raise LookupError(f"no step {name!r}; the steps are {[s.name for s in STEPS]}")


def step_key(name: str, part: int | None) -> str:
    """The step's row in job_steps: 'cluster', or 'embed:3' for a part of a fanned-out step."""
    return name if part is None else f"{name}:{part}"


def parts_of(conn: psycopg.Connection, job_id: str, step: Step) -> list[int | None]:
    """The parts a step runs as: one (None), or one per embed chunk of the job."""
    return list(range(repository_jobs.job_plan(conn, job_id).embed_chunks or 0)) if step.fan_out else [None]


def run_step(conn: psycopg.Connection, job_id: str, name: str, components: Components,
             part: int | None = None) -> dict[str, Any]:
    """Run one step (or one part) once: skipped when done, refused when the job is cancelled; commits."""
    step, key = step_named(name), step_key(name, part)
    job = repository_jobs.get_job(conn, job_id)
    if job is None:
        raise LookupError(f"no job {job_id}")
    if job.status == "cancelled":
        raise JobCancelled(f"job {job_id} was cancelled")
    state = repository_jobs.step_status(conn, job_id, key)
    if job.status == "succeeded" or (state is not None and state[0] == "done"):
        conn.rollback()
        return state[1] if state else {}
    # A step delivered twice at once (a redelivery racing the original) runs only once.
    lock = f"{job_id}/{key}"
    if not repository_jobs.try_lock_step(conn, lock):
        conn.rollback()
        raise StepBusy(f"step {key} of job {job_id} is running elsewhere")
    try:
        repository_jobs.start_step(conn, job_id, key)
        conn.commit()
        outcome = step.run(conn, job, components, part)
        repository_jobs.add_job_counts(conn, job_id, outcome.counts, outcome.summed)
        repository_jobs.finish_step(conn, job_id, key, outcome.detail, progress(conn, job_id, finishing=key))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        if not conn.closed and not conn.broken:
            repository_jobs.unlock_step(conn, lock)
            conn.commit()
    logger.info("job %s: %s done %s", job_id, key, outcome.detail)
    return outcome.detail


def progress(conn: psycopg.Connection, job_id: str, finishing: str | None = None) -> float:
    """Share of the job done: the weights of its done steps (and of the one finishing now)."""
    finished = set(repository_jobs.done_steps(conn, job_id)) | ({finishing} if finishing else set())
    chunks = repository_jobs.job_plan(conn, job_id).embed_chunks or 1
    weights = {step.name: step.weight / (chunks if step.fan_out else 1) for step in STEPS}
    fanned = {step.name for step in STEPS if step.fan_out}
    # A step that is not fanned out weighs once, done; its own parts' rows (understand:3) weigh nothing.
    return sum(weights.get(key.split(":")[0], 0.0) for key in finished
               if ":" not in key or key.split(":")[0] in fanned)


def first_unfinished(conn: psycopg.Connection, job_id: str) -> tuple[str, list[int]]:
    """The first step not done yet ('done' when none), and for a fanned-out step its parts still missing."""
    done = repository_jobs.done_steps(conn, job_id)
    for step in STEPS:
        missing = [p for p in parts_of(conn, job_id, step) if step_key(step.name, p) not in done]
        if missing:
            return step.name, [p for p in missing if p is not None]
    return DONE, []


def mark_failed(conn: psycopg.Connection, job_id: str, error: BaseException) -> None:
    """Record a step's final failure on the job (unless it already ended)."""
    conn.rollback()
    job = repository_jobs.get_job(conn, job_id)
    if job is not None and job.status in ("queued", "running"):
        repository_jobs.update_job(conn, job_id, status="failed", error=f"{type(error).__name__}: {error}")
        conn.commit()
