"""Worker liveness: heartbeats in Postgres, and the jobs left behind by workers that stopped beating.

A worker SIGKILLed mid-step (an OOM kill, a lost host) never acknowledges its Celery message, and
Redis hands that message to another worker only after the visibility timeout (an hour by default).
Instead each worker beats every `beat_seconds` and records the step tasks it receives and runs,
keeping its last finished step of each job in progress (a worker killed after one step and before
recording the next it had taken from the broker still marks the job); every live worker checks as
often for rows whose worker has been silent for `dead_after_seconds`, or that an earlier process
under a restarted worker's name left, and re-drives their jobs from the first unfinished step
(workers/heartbeat.py does the scheduling).

Re-driving is safe while the dead worker's step may in fact still run (a worker too busy to beat,
a network split): a step runs under a per-step advisory lock on its own Postgres connection
(miner.jobs.run_step), so a second delivery finds it done or busy and does nothing. A killed
process's connection closes with it, and Postgres releases its session's advisory locks then, so
the re-driven step can take the lock.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass

import psycopg

from miner import repository_workers as workers

logger = logging.getLogger(__name__)

# This process, as its beats name it: a restarted worker may reuse the name, host and even pid.
PROCESS = uuid.uuid4().hex


@dataclass(frozen=True)
class HeartbeatParams:
    """How often workers beat and check, and how long a silent worker counts as alive."""

    beat_seconds: float = 5.0
    # Four missed beats: long enough that a busy worker is not taken for dead, short enough that
    # its job resumes well within a minute.
    dead_after_seconds: float = 20.0


def beat(conn: psycopg.Connection, worker: str) -> None:
    """Record that this process (worker `worker`) is alive; commits."""
    workers.beat(conn, worker, socket.gethostname(), os.getpid(), PROCESS)
    conn.commit()


def stop(conn: psycopg.Connection, worker: str) -> None:
    """A clean shutdown: the worker is no longer counted as alive; commits."""
    workers.forget_worker(conn, worker)
    conn.commit()


def claim(conn: psycopg.Connection, task_id: str, worker: str, job_id: str, task: str) -> None:
    """`worker` received or starts task `task_id`, a step of job `job_id`; commits."""
    workers.claim_task(conn, task_id, worker, job_id, task)
    conn.commit()


def release(conn: psycopg.Connection, task_id: str) -> None:
    """Task `task_id` ended (done, failed, retried or ignored); its row stays as its worker's last
    finished step of the job; commits."""
    workers.release_task(conn, task_id)
    conn.commit()


def take_orphaned_jobs(conn: psycopg.Connection, params: HeartbeatParams = HeartbeatParams()) -> list[str]:
    """Jobs still queued or running whose step task's worker stopped beating; each is returned to
    exactly one caller, which must re-drive it. Commits."""
    orphaned = workers.take_orphaned_jobs(conn, params.dead_after_seconds)
    conn.commit()
    for job_id, dead in orphaned:
        logger.warning("heartbeat: job %s lost its worker %s (silent > %ss); re-driving it",
                       job_id, ", ".join(dead), params.dead_after_seconds)
    return [job_id for job_id, _ in orphaned]
