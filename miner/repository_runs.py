"""SQL for what a job finds: per-job assignments, themes and quotes, theme × model counts, the
cached vectors of its units, and the theme registry (stable ids, lineage). Small named functions
over a connection, parameterized, upserts, no commits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import psycopg
from psycopg.rows import dict_row

from miner.records import Theme, ThemeModelStat, Unit
from miner.repository import load_embeddings
from miner.registry import ThemeEvent


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
            """INSERT INTO themes (job_id, theme_id, label, keywords, summary, labeller, answers, interviews, stance)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            [(job_id, t.theme_id, t.label, list(t.keywords), t.summary, t.labeller, t.answers, t.interviews, t.stance)
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
            """SELECT t.theme_id, t.label, t.keywords, t.labeller, t.answers, t.interviews, t.summary, t.stance,
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
