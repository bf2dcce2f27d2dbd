"""SQL of the sampled cluster path (miner.assign): the sample's units, theme centroids, chunk assignments."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import psycopg
from psycopg.rows import dict_row

from miner.records import Unit


def count_job_units(conn: psycopg.Connection, job_id: str) -> int:
    return conn.execute("SELECT count(*) FROM job_units WHERE job_id = %s", (job_id,)).fetchone()[0]


def load_job_units_at(conn: psycopg.Connection, job_id: str, positions: Sequence[int]) -> list[Unit]:
    """The job's units at these positions of its fixed order, in that order."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """SELECT u.unit_id, u.interview_id, u.study, u.session_model, u.answer_index, u.question,
                      u.answer, u.answer_hash
               FROM job_units j JOIN units u USING (unit_id)
               WHERE j.job_id = %s AND j.position = ANY(%s)
               ORDER BY j.position""",
            (job_id, [int(p) for p in positions]),
        ).fetchall()
    return [Unit(**row) for row in rows]


def set_sampled_units(conn: psycopg.Connection, job_id: str, sampled: int | None) -> None:
    conn.execute("UPDATE jobs SET sampled_units = %s WHERE job_id = %s", (sampled, job_id))


def sampled_units(conn: psycopg.Connection, job_id: str) -> int | None:
    row = conn.execute("SELECT sampled_units FROM jobs WHERE job_id = %s", (job_id,)).fetchone()
    return None if row is None else row[0]


def save_centroids(conn: psycopg.Connection, job_id: str, theme_ids: Sequence[int], centroids: np.ndarray) -> None:
    conn.execute("DELETE FROM job_centroids WHERE job_id = %s", (job_id,))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO job_centroids (job_id, theme_id, vector) VALUES (%s, %s, %s)",
                        [(job_id, int(t), np.asarray(c, dtype="<f4").tobytes()) for t, c in zip(theme_ids, centroids)])


def load_centroids(conn: psycopg.Connection, job_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(theme ids, centroid rows) of a sampled job, ordered by theme id."""
    with conn.cursor(binary=True) as cur:
        rows = cur.execute("SELECT theme_id, vector FROM job_centroids WHERE job_id = %s ORDER BY theme_id",
                           (job_id,)).fetchall()
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    return (np.array([r[0] for r in rows], dtype=np.int64),
            np.vstack([np.frombuffer(r[1], dtype="<f4") for r in rows]))


def add_assignments(conn: psycopg.Connection, job_id: str, assignments: dict[str, int | None]) -> int:
    """Assign units not assigned yet (a re-run part, or the sample's units, keep theirs); returns rows written."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO assignments (job_id, unit_id, theme_id) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            [(job_id, unit_id, theme_id) for unit_id, theme_id in assignments.items()],
        )
        return max(cur.rowcount, 0)
