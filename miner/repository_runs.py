"""SQL for job runs: job steps, job unit snapshots, per-job themes/assignments and the theme
registry. (repository.py grew past its size; this is its second half, same rules: small named
functions over a connection, parameterized, upserts, no commits.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from miner.records import JobPlan, Theme, ThemeModelStat, Unit
from miner.repository import load_embeddings
from miner.registry import ThemeEvent


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
    """The study's published job (latest succeeded), other than `excluding`."""
    row = conn.execute(
        """SELECT job_id FROM jobs WHERE study = %s AND status = 'succeeded' AND job_id IS DISTINCT FROM %s
           ORDER BY finished_at DESC, job_id LIMIT 1""",
        (study, excluding),
    ).fetchone()
    return None if row is None else str(row[0])


def save_job_units(conn: psycopg.Connection, job_id: str, unit_ids: Sequence[str]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO job_units (job_id, position, unit_id) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            [(job_id, position, unit_id) for position, unit_id in enumerate(unit_ids)],
        )


def load_job_units(conn: psycopg.Connection, job_id: str, offset: int = 0, limit: int | None = None) -> list[Unit]:
    """A job's units in their fixed order (optionally one slice of it)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """SELECT u.unit_id, u.interview_id, u.study, u.session_model, u.answer_index, u.question,
                      u.answer, u.answer_hash
               FROM job_units j JOIN units u USING (unit_id)
               WHERE j.job_id = %s AND j.position >= %s AND (%s::int IS NULL OR j.position < %s + %s::int)
               ORDER BY j.position""",
            (job_id, offset, limit, offset, limit),
        ).fetchall()
    return [Unit(**row) for row in rows]


def load_assignments(conn: psycopg.Connection, job_id: str) -> dict[str, int | None]:
    """unit id → theme id (None = unassigned) of a job."""
    return dict(conn.execute("SELECT unit_id, theme_id FROM assignments WHERE job_id = %s", (job_id,)).fetchall())


def save_assignments(conn: psycopg.Connection, job_id: str, assignments: dict[str, int | None]) -> None:
    conn.execute("DELETE FROM assignments WHERE job_id = %s", (job_id,))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO assignments (job_id, unit_id, theme_id) VALUES (%s, %s, %s)",
                        [(job_id, unit_id, theme_id) for unit_id, theme_id in assignments.items()])


def save_themes(conn: psycopg.Connection, job_id: str, themes: Sequence[Theme]) -> None:
    """Replace a job's themes and their quotes (dependent per-theme rows go with them)."""
    conn.execute("DELETE FROM themes WHERE job_id = %s", (job_id,))
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO themes (job_id, theme_id, label, keywords, summary, labeller, answers, interviews)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
            [(job_id, t.theme_id, t.label, list(t.keywords), t.summary, t.labeller, t.answers, t.interviews)
             for t in themes],
        )
        cur.executemany(
            "INSERT INTO theme_quotes (job_id, theme_id, rank, unit_id) VALUES (%s, %s, %s, %s)",
            [(job_id, t.theme_id, rank, unit_id) for t in themes for rank, unit_id in enumerate(t.quote_unit_ids, 1)],
        )


def update_theme_labels(conn: psycopg.Connection, job_id: str, themes: Sequence[Theme]) -> None:
    """Store new labels/summaries of existing theme rows."""
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE themes SET label = %s, summary = %s, labeller = %s WHERE job_id = %s AND theme_id = %s",
            [(t.label, t.summary, t.labeller, job_id, t.theme_id) for t in themes],
        )


def load_themes(conn: psycopg.Connection, job_id: str) -> list[Theme]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """SELECT t.theme_id, t.label, t.keywords, t.labeller, t.answers, t.interviews, t.summary,
                      coalesce(array_agg(q.unit_id ORDER BY q.rank) FILTER (WHERE q.unit_id IS NOT NULL), '{}')
                          AS quote_unit_ids
               FROM themes t LEFT JOIN theme_quotes q USING (job_id, theme_id)
               WHERE t.job_id = %s GROUP BY t.job_id, t.theme_id ORDER BY t.theme_id""",
            (job_id,),
        ).fetchall()
    return [Theme(**{**r, "keywords": tuple(r["keywords"]), "quote_unit_ids": tuple(r["quote_unit_ids"])})
            for r in rows]


def save_model_stats(conn: psycopg.Connection, job_id: str, stats: Sequence[ThemeModelStat]) -> None:
    conn.execute("DELETE FROM theme_model_stats WHERE job_id = %s", (job_id,))
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO theme_model_stats (job_id, theme_id, session_model, answers, interviews, share)
               VALUES (%s, %s, %s, %s, %s, %s)""",
            [(job_id, s.theme_id, s.session_model, s.answers, s.interviews, s.share) for s in stats],
        )


def load_vectors(conn: psycopg.Connection, model: str, units: Sequence[Unit]) -> dict[str, np.ndarray]:
    """Cached vectors of these units' answers (by answer hash) under an embedding model."""
    return load_embeddings(conn, model, (u.answer_hash for u in units))


def next_theme_id(conn: psycopg.Connection, study: str) -> int:
    """The first theme id never used in the study."""
    return conn.execute(
        """SELECT coalesce(max(theme_id) + 1, 0) FROM (
               SELECT theme_id FROM theme_registry WHERE study = %(study)s
               UNION ALL
               SELECT t.theme_id FROM themes t JOIN jobs j USING (job_id)
               WHERE j.study = %(study)s AND j.status = 'succeeded') used""",
        {"study": study},
    ).fetchone()[0]


def active_themes(conn: psycopg.Connection, study: str) -> set[int]:
    rows = conn.execute("SELECT theme_id FROM theme_registry WHERE study = %s AND retired_job IS NULL", (study,))
    return {r[0] for r in rows}


def save_theme_events(conn: psycopg.Connection, study: str, job_id: str, events: Sequence[ThemeEvent]) -> None:
    conn.execute("DELETE FROM theme_events WHERE job_id = %s", (job_id,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO theme_events (study, job_id, theme_id, event, related) VALUES (%s, %s, %s, %s, %s)",
            [(study, job_id, e.theme_id, e.event, list(e.related)) for e in events],
        )


def apply_theme_events(conn: psycopg.Connection, job_id: str) -> None:
    """Fold a job's lineage events into the registry (at publish time)."""
    conn.execute(
        """INSERT INTO theme_registry (study, theme_id, born_job, last_job)
           SELECT study, theme_id, job_id, job_id FROM theme_events
           WHERE job_id = %(job)s AND event <> 'retired'
           ON CONFLICT (study, theme_id) DO UPDATE SET last_job = excluded.last_job, retired_job = NULL""",
        {"job": job_id},
    )
    conn.execute(
        """UPDATE theme_registry r SET retired_job = e.job_id
           FROM theme_events e
           WHERE e.job_id = %(job)s AND e.event = 'retired' AND r.study = e.study AND r.theme_id = e.theme_id""",
        {"job": job_id},
    )


def studies_needing_nightly(conn: psycopg.Connection) -> list[str]:
    """Studies with interviews that their published job has not seen (or with no published job)."""
    rows = conn.execute(
        """SELECT DISTINCT i.study FROM interviews i
           LEFT JOIN latest_jobs l USING (study)
           WHERE l.job_id IS NULL OR NOT EXISTS (
               SELECT 1 FROM job_units ju JOIN units u USING (unit_id)
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
