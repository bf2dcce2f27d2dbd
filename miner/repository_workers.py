"""SQL for worker liveness (schemas/migrations/011): heartbeats and the step tasks in flight.

Same rules as repository.py: small named functions over a connection, parameterized, no commits.
"""

from __future__ import annotations

import psycopg


def beat(conn: psycopg.Connection, worker: str, hostname: str, pid: int, process: str) -> None:
    """Record that `worker` is alive now; a new `process` (token drawn at process start) under the
    same name starts afresh."""
    conn.execute(
        """INSERT INTO worker_heartbeats (worker, hostname, pid, process) VALUES (%s, %s, %s, %s)
           ON CONFLICT (worker) DO UPDATE SET last_beat = now(),
               started_at = CASE WHEN worker_heartbeats.process = excluded.process
                                 THEN worker_heartbeats.started_at ELSE now() END,
               hostname = excluded.hostname, pid = excluded.pid, process = excluded.process""",
        (worker, hostname, pid, process),
    )


def forget_worker(conn: psycopg.Connection, worker: str) -> None:
    """A worker shutting down cleanly stops being counted as alive (its tasks in flight, if any, as
    orphaned); its finished steps no longer mark anything: a clean shutdown hands back the messages it
    had taken."""
    conn.execute("DELETE FROM worker_heartbeats WHERE worker = %s", (worker,))
    conn.execute("DELETE FROM worker_tasks WHERE worker = %s AND finished_at IS NOT NULL", (worker,))


def claim_task(conn: psycopg.Connection, task_id: str, worker: str, job_id: str, task: str) -> None:
    """`worker` has received or runs task `task_id` (a step of `job_id`) from now on; its finished
    steps of this job, and of jobs no longer in progress, stop marking them."""
    params = {"task_id": task_id, "worker": worker, "job_id": job_id, "task": task}
    conn.execute(
        """DELETE FROM worker_tasks t
           WHERE t.worker = %(worker)s AND t.finished_at IS NOT NULL AND t.task_id <> %(task_id)s
             AND (t.job_id::text = %(job_id)s
                  OR NOT EXISTS (SELECT 1 FROM jobs j WHERE j.job_id = t.job_id
                                 AND j.status IN ('queued', 'running')))""",
        params,
    )
    conn.execute(
        """INSERT INTO worker_tasks (task_id, worker, job_id, task)
           SELECT %(task_id)s, %(worker)s, job_id, %(task)s FROM jobs WHERE job_id = %(job_id)s
           ON CONFLICT (task_id) DO UPDATE SET worker = excluded.worker, job_id = excluded.job_id,
               task = excluded.task, started_at = now(), finished_at = NULL""",
        params,
    )


def unrecorded_tasks(conn: psycopg.Connection, taken: list[tuple[str, str | None, str | None, float]]) -> list[str]:
    """Of step messages taken from the broker, (task id, job id, step key as in job_steps, when taken as
    a Unix time), those no worker has recorded (received, running or last finished) and whose step
    has neither started since nor finished. A step started after its message was taken had a worker
    that recorded it: its row gone unrecorded means take_orphaned_jobs took it, with the job, which it
    re-drove (or the worker is alive, taken for dead for a while); a finished step needs no message."""
    rows = conn.execute(
        """SELECT m.task_id
           FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[]) AS m(task_id, job_id, step, taken)
           WHERE NOT EXISTS (SELECT 1 FROM worker_tasks t WHERE t.task_id = m.task_id)
             AND NOT EXISTS (SELECT 1 FROM job_steps s WHERE s.job_id::text = lower(m.job_id) AND s.step = m.step
                             AND (s.status = 'done' OR s.started_at >= to_timestamp(m.taken)))""",
        ([t[0] for t in taken], [t[1] for t in taken], [t[2] for t in taken], [t[3] for t in taken]),
    ).fetchall()
    return [r[0] for r in rows]


def release_task(conn: psycopg.Connection, task_id: str) -> None:
    """Task `task_id` ended: its row stays, finished, as its worker's last sign of the job."""
    conn.execute("UPDATE worker_tasks SET finished_at = now() WHERE task_id = %s", (task_id,))


def take_orphaned_jobs(conn: psycopg.Connection, dead_after_seconds: float) -> list[tuple[str, list[str]]]:
    """Remove the rows (steps in flight or last finished) of workers silent for `dead_after_seconds`
    (or never seen beating that long) and of earlier processes under a name a restarted worker beats
    with; return (job id, dead workers) for those jobs still queued or running.

    The rows are deleted as they are read, so of several live workers checking at once only one
    gets each orphan.
    """
    rows = conn.execute(
        """WITH orphaned AS (
               DELETE FROM worker_tasks t
               WHERE (NOT EXISTS (SELECT 1 FROM worker_heartbeats h WHERE h.worker = t.worker
                                  AND h.last_beat >= now() - make_interval(secs => %(dead)s))
                      AND t.started_at < now() - make_interval(secs => %(dead)s))
                  -- recorded before the process now beating under that name started: a restarted
                  -- worker (a container restarted after an OOM kill keeps its hostname)
                  OR EXISTS (SELECT 1 FROM worker_heartbeats h WHERE h.worker = t.worker
                             AND t.started_at < h.started_at)
               RETURNING t.job_id, t.worker)
           SELECT o.job_id, array_agg(DISTINCT o.worker ORDER BY o.worker)
           FROM orphaned o JOIN jobs j USING (job_id)
           WHERE j.status IN ('queued', 'running')
           GROUP BY o.job_id ORDER BY o.job_id""",
        {"dead": dead_after_seconds},
    ).fetchall()
    return [(str(job_id), list(workers)) for job_id, workers in rows]


def live_workers(conn: psycopg.Connection, dead_after_seconds: float) -> list[str]:
    """Workers that beat within the last `dead_after_seconds`."""
    rows = conn.execute(
        """SELECT worker FROM worker_heartbeats WHERE last_beat >= now() - make_interval(secs => %s)
           ORDER BY worker""",
        (dead_after_seconds,),
    ).fetchall()
    return [r[0] for r in rows]
