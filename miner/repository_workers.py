"""SQL for worker liveness (schemas/migrations/011): heartbeats and the step tasks in flight.

Same rules as repository.py: small named functions over a connection, parameterized, no commits.
"""

from __future__ import annotations

import psycopg


def beat(conn: psycopg.Connection, worker: str, hostname: str, pid: int) -> None:
    """Record that `worker` is alive now (a restarted worker of the same name starts afresh)."""
    conn.execute(
        """INSERT INTO worker_heartbeats (worker, hostname, pid) VALUES (%s, %s, %s)
           ON CONFLICT (worker) DO UPDATE SET last_beat = now(),
               started_at = CASE WHEN worker_heartbeats.pid = excluded.pid
                                  AND worker_heartbeats.hostname = excluded.hostname
                                 THEN worker_heartbeats.started_at ELSE now() END,
               hostname = excluded.hostname, pid = excluded.pid""",
        (worker, hostname, pid),
    )


def forget_worker(conn: psycopg.Connection, worker: str) -> None:
    """A worker shutting down cleanly stops being counted as alive (its tasks, if any, as orphaned)."""
    conn.execute("DELETE FROM worker_heartbeats WHERE worker = %s", (worker,))


def claim_task(conn: psycopg.Connection, task_id: str, worker: str, job_id: str, task: str) -> None:
    """`worker` runs task `task_id` (a step of `job_id`) from now on."""
    conn.execute(
        """INSERT INTO worker_tasks (task_id, worker, job_id, task)
           SELECT %(task_id)s, %(worker)s, job_id, %(task)s FROM jobs WHERE job_id = %(job_id)s
           ON CONFLICT (task_id) DO UPDATE SET worker = excluded.worker, job_id = excluded.job_id,
               task = excluded.task, started_at = now()""",
        {"task_id": task_id, "worker": worker, "job_id": job_id, "task": task},
    )


def release_task(conn: psycopg.Connection, task_id: str) -> None:
    conn.execute("DELETE FROM worker_tasks WHERE task_id = %s", (task_id,))


def take_orphaned_jobs(conn: psycopg.Connection, dead_after_seconds: float) -> list[tuple[str, list[str]]]:
    """Remove the in-flight rows of workers silent for `dead_after_seconds` (or never seen beating
    that long); return (job id, dead workers) for those jobs still queued or running.

    The rows are deleted as they are read, so of several live workers checking at once only one
    gets each orphan.
    """
    rows = conn.execute(
        """WITH orphaned AS (
               DELETE FROM worker_tasks t
               WHERE NOT EXISTS (SELECT 1 FROM worker_heartbeats h WHERE h.worker = t.worker
                                 AND h.last_beat >= now() - make_interval(secs => %(dead)s))
                 AND t.started_at < now() - make_interval(secs => %(dead)s)
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
