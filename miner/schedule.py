"""Job control shared by the CLI and the workers: nightly jobs, cancel, retry, stalled jobs."""

from __future__ import annotations

import logging

import psycopg

from miner import repository_jobs

logger = logging.getLogger(__name__)


class JobStateError(RuntimeError):
    """The job is not in a state that allows this."""


def create_nightly_jobs(conn: psycopg.Connection, force: bool = False) -> list[tuple[str, str]]:
    """A nightly job (committed) for each study with new interviews; `force` queues every study.

    A study whose previous job is still queued or running is left alone for tonight.
    """
    if force:
        studies = repository_jobs.studies_with_interviews(conn)
    else:
        studies = repository_jobs.studies_needing_nightly(conn)
    created = []
    for study in studies:
        if repository_jobs.active_job(conn, study) is None:
            created.append((study, repository_jobs.create_job(conn, study, kind="nightly")))
    conn.commit()
    logger.info("nightly: %d studies → %d jobs", len(studies), len(created))
    return created


def cancel_job(conn: psycopg.Connection, job_id: str) -> None:
    """Stop a queued or running job: its remaining steps do nothing, nothing gets published."""
    if repository_jobs.get_job(conn, job_id) is None:
        raise LookupError(f"no job {job_id}")
    if not repository_jobs.set_job_status(conn, job_id, "cancelled", ("queued", "running")):
        raise JobStateError(f"job {job_id} is {repository_jobs.get_job(conn, job_id).status}; only a queued or "
                            "running job can be cancelled")
    conn.commit()


def reopen_job(conn: psycopg.Connection, job_id: str) -> str:
    """Make a failed, cancelled or stalled job runnable again; returns the first unfinished step."""
    from miner.jobs import first_unfinished

    job = repository_jobs.get_job(conn, job_id)
    if job is None:
        raise LookupError(f"no job {job_id}")
    if job.status == "succeeded":
        raise JobStateError(f"job {job_id} already succeeded")
    repository_jobs.set_job_status(conn, job_id, "queued", ("failed", "cancelled", "running", "queued"))
    conn.commit()
    return first_unfinished(conn, job_id)[0]
