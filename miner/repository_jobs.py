"""SQL for analysis jobs: the job rows, their steps, their fixed units, the plan one step leaves for
the next, per-step advisory locks and the queries that schedule jobs. Small named functions over a
connection, parameterized; they never commit (the caller owns the transaction)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from miner.records import Job, JobPlan, Unit


def create_job(conn: psycopg.Connection, study: str, kind: str = "analyze",
               params: dict[str, Any] | None = None) -> str:
    """A new queued job; returns its id."""
    job_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO jobs (job_id, study, kind, params) VALUES (%s, %s, %s, %s)",
        (job_id, study, kind, Jsonb(params or {})),
    )
    return job_id


def _job(row: dict[str, Any]) -> Job:
    return Job(**{**row, "job_id": str(row["job_id"])})


_JOB_COLUMNS = "job_id, study, kind, status, stage, progress, created_at, finished_at, error, counts, params"


def get_job(conn: psycopg.Connection, job_id: str) -> Job | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = %s", (job_id,)).fetchone()
    return None if row is None else _job(row)


def list_jobs(conn: psycopg.Connection, study: str | None = None, limit: int = 50) -> list[Job]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"""SELECT {_JOB_COLUMNS} FROM jobs WHERE %(study)s::text IS NULL OR study = %(study)s
                ORDER BY created_at DESC LIMIT %(limit)s""",
            {"study": study, "limit": limit},
        ).fetchall()
    return [_job(r) for r in rows]


def update_job(conn: psycopg.Connection, job_id: str, *, status: str | None = None,
               stage: str | None = None, progress: float | None = None, error: str | None = None,
               counts: dict[str, Any] | None = None) -> None:
    """Move a job along; timestamps follow the status."""
    conn.execute(
        """UPDATE jobs SET
               status = coalesce(%(status)s, status),
               stage = coalesce(%(stage)s, stage),
               progress = coalesce(%(progress)s, progress),
               error = coalesce(%(error)s, error),
               counts = counts || coalesce(%(counts)s, '{}'::jsonb),
               started_at = CASE WHEN %(status)s = 'running' THEN coalesce(started_at, now()) ELSE started_at END,
               finished_at = CASE WHEN %(status)s IN ('succeeded', 'failed', 'cancelled') THEN now()
                                  ELSE finished_at END
           WHERE job_id = %(job_id)s""",
        {"job_id": job_id, "status": status, "stage": stage,
         "progress": None if progress is None else min(max(progress, 0.0), 1.0),
         "error": error, "counts": None if counts is None else Jsonb(counts)},
    )


def step_status(conn: psycopg.Connection, job_id: str, step: str) -> tuple[str, dict[str, Any]] | None:
    """(status, detail) of a job's step, or None if it never started."""
    row = conn.execute("SELECT status, detail FROM job_steps WHERE job_id = %s AND step = %s", (job_id, step)).fetchone()
    return None if row is None else (row[0], row[1])


def start_step(conn: psycopg.Connection, job_id: str, step: str) -> None:
    conn.execute(
        """INSERT INTO job_steps (job_id, step, status) VALUES (%s, %s, 'running')
           ON CONFLICT (job_id, step) DO UPDATE SET status = 'running', attempts = job_steps.attempts + 1,
               started_at = now(), finished_at = NULL""",
        (job_id, step),
    )
    conn.execute(
        """UPDATE jobs SET status = 'running', stage = %s, heartbeat_at = now(),
               started_at = coalesce(started_at, now()), error = NULL
           WHERE job_id = %s AND status IN ('queued', 'running', 'failed')""",
        (step.split(":")[0], job_id),
    )


def finish_step(conn: psycopg.Connection, job_id: str, step: str, detail: dict[str, Any], progress: float) -> None:
    # clock_timestamp(), not now(): this transaction began when the step's body did, so now() would
    # record the step's start as its finish.
    conn.execute(
        """UPDATE job_steps SET status = 'done', finished_at = clock_timestamp(), detail = %s
           WHERE job_id = %s AND step = %s""",
        (Jsonb(detail), job_id, step),
    )
    conn.execute(
        "UPDATE jobs SET progress = greatest(progress, %s), heartbeat_at = now() WHERE job_id = %s",
        (min(max(progress, 0.0), 1.0), job_id),
    )


def delete_steps(conn: psycopg.Connection, job_id: str, prefix: str) -> None:
    """Forget a job's step rows whose key starts with `prefix` (a step's parts, to start it over)."""
    conn.execute("DELETE FROM job_steps WHERE job_id = %s AND starts_with(step, %s)", (job_id, prefix))


def done_steps(conn: psycopg.Connection, job_id: str) -> dict[str, dict[str, Any]]:
    rows = conn.execute("SELECT step, detail FROM job_steps WHERE job_id = %s AND status = 'done'", (job_id,))
    return dict(rows.fetchall())


def set_job_plan(conn: psycopg.Connection, job_id: str, plan: JobPlan) -> None:
    conn.execute("UPDATE jobs SET embed_chunks = %s, embed_chunk_size = %s, previous_job_id = %s WHERE job_id = %s",
                 (plan.embed_chunks, plan.embed_chunk_size, plan.previous_job_id, job_id))


def job_plan(conn: psycopg.Connection, job_id: str) -> JobPlan:
    """What the job's `units` step fixed (embed chunks, the job it builds on) and its clustering base."""
    row = conn.execute("SELECT embed_chunks, embed_chunk_size, previous_job_id, base_units FROM jobs WHERE job_id = %s",
                       (job_id,)).fetchone()
    return JobPlan(row[0], row[1], None if row[2] is None else str(row[2]), row[3])


def set_base_units(conn: psycopg.Connection, job_id: str, base_units: int) -> None:
    conn.execute("UPDATE jobs SET base_units = %s WHERE job_id = %s", (base_units, job_id))


def add_job_counts(conn: psycopg.Connection, job_id: str, counts: dict[str, Any], summed: dict[str, int]) -> None:
    """Merge a step's counts into the job's: `counts` replace keys, `summed` add to them (fanned-out steps)."""
    conn.execute(
        """UPDATE jobs SET counts = counts || %(counts)s || (
               SELECT coalesce(jsonb_object_agg(a.key, coalesce((counts ->> a.key)::bigint, 0) + a.value::bigint),
                               '{}'::jsonb)
               FROM jsonb_each_text(%(summed)s) a)
           WHERE job_id = %(job)s""",
        {"counts": Jsonb(counts), "summed": Jsonb(summed), "job": job_id},
    )


def try_lock_step(conn: psycopg.Connection, key: str) -> bool:
    """Take the session-level advisory lock of one step of one job; False when another session holds it."""
    return conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)).fetchone()[0]


def unlock_step(conn: psycopg.Connection, key: str) -> None:
    conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))


def lock_job(conn: psycopg.Connection, job_id: str) -> str:
    """Lock the job's row for this transaction; returns its status."""
    return conn.execute("SELECT status FROM jobs WHERE job_id = %s FOR UPDATE", (job_id,)).fetchone()[0]


def published_job(conn: psycopg.Connection, study: str, excluding: str | None = None) -> str | None:
    """The study's published job, other than `excluding` (the SQL view published_jobs defines which)."""
    row = conn.execute(
        """SELECT job_id FROM published_jobs WHERE study = %s AND job_id IS DISTINCT FROM %s
           ORDER BY recency LIMIT 1""",
        (study, excluding),
    ).fetchone()
    return None if row is None else str(row[0])


def save_job_units(conn: psycopg.Connection, job_id: str, unit_ids: Sequence[str], start: int = 0) -> None:
    """The job's opinion units in their fixed order, from position `start` on."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO job_units (job_id, position, unit_id) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            [(job_id, position, unit_id) for position, unit_id in enumerate(unit_ids, start)],
        )


_UNIT_COLUMNS = """u.unit_id, u.interview_id, u.study, u.session_model, u.answer_index, u.question, u.answer,
    u.answer_hash, u.answer_unit_id, u.span_start, u.span_end, u.full_answer, u.stance, u.source"""


def save_job_answers(conn: psycopg.Connection, job_id: str, answers: Sequence[tuple[str, bool]],
                     start: int = 0) -> None:
    """The job's answer units (unit id, carries no opinion), in their fixed order from position `start` on."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO job_answers (job_id, position, unit_id, no_opinion) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            [(job_id, position, unit_id, empty) for position, (unit_id, empty) in enumerate(answers, start)],
        )


def load_job_answers(conn: psycopg.Connection, job_id: str) -> list[Unit]:
    """A job's answer units (the whole answers, with or without an opinion) in their fixed order."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"""SELECT {_UNIT_COLUMNS}
               FROM job_answers j JOIN units u USING (unit_id)
               WHERE j.job_id = %s ORDER BY j.position""", (job_id,)).fetchall()
    return [Unit(**row) for row in rows]


def load_job_units(conn: psycopg.Connection, job_id: str, offset: int = 0, limit: int | None = None) -> list[Unit]:
    """A job's opinion units (what it clusters) in their fixed order (optionally one slice of it)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"""SELECT {_UNIT_COLUMNS}
               FROM job_units j JOIN units u USING (unit_id)
               WHERE j.job_id = %s AND j.position >= %s AND (%s::int IS NULL OR j.position < %s + %s::int)
               ORDER BY j.position""",
            (job_id, offset, limit, offset, limit),
        ).fetchall()
    return [Unit(**row) for row in rows]


def studies_needing_nightly(conn: psycopg.Connection) -> list[str]:
    """Studies with interviews that their published job has not seen (or with no published job)."""
    rows = conn.execute(
        """SELECT DISTINCT i.study FROM interviews i
           LEFT JOIN latest_jobs l USING (study)
           WHERE l.job_id IS NULL OR NOT EXISTS (
               SELECT 1 FROM (SELECT job_id, unit_id FROM job_answers UNION ALL
                              SELECT job_id, unit_id FROM job_units) ju JOIN units u USING (unit_id)
               WHERE ju.job_id = l.job_id AND u.interview_id = i.interview_id)
           ORDER BY 1"""
    ).fetchall()
    return [r[0] for r in rows]


def active_job(conn: psycopg.Connection, study: str) -> str | None:
    row = conn.execute("SELECT job_id FROM jobs WHERE study = %s AND status IN ('queued', 'running') LIMIT 1",
                       (study,)).fetchone()
    return None if row is None else str(row[0])


def stalled_jobs(conn: psycopg.Connection, seconds: int) -> list[str]:
    """Jobs queued or running with no step activity for `seconds` (a lost message, a dead worker)."""
    rows = conn.execute(
        """SELECT job_id FROM jobs
           WHERE status IN ('queued', 'running')
             AND coalesce(heartbeat_at, created_at) < now() - make_interval(secs => %s)
           ORDER BY created_at""",
        (seconds,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def last_nightly(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Per study, its latest nightly job."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT DISTINCT ON (study) study, job_id, status, created_at, finished_at, counts, error
               FROM jobs WHERE kind = 'nightly' ORDER BY study, created_at DESC"""
        ).fetchall()


def touch_job(conn: psycopg.Connection, job_id: str) -> None:
    conn.execute("UPDATE jobs SET heartbeat_at = now() WHERE job_id = %s", (job_id,))


def set_job_status(conn: psycopg.Connection, job_id: str, status: str, allowed_from: Sequence[str]) -> bool:
    """Move a job to `status` if it is in one of `allowed_from`; returns whether it moved."""
    row = conn.execute(
        """UPDATE jobs SET status = %s, error = CASE WHEN %s = 'queued' THEN NULL ELSE error END,
               finished_at = CASE WHEN %s IN ('cancelled', 'failed') THEN now() ELSE NULL END,
               heartbeat_at = now()
           WHERE job_id = %s AND status = ANY(%s) RETURNING job_id""",
        (status, status, status, job_id, list(allowed_from)),
    ).fetchone()
    return row is not None


def studies_with_interviews(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT study FROM interviews ORDER BY 1")]
