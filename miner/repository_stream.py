"""SQL that reads a job's rows in bounded pieces (issue 14): server-side cursors over its units with
their theme ids and stored vectors, and its answers, opinion units and interviews one set of
interviews at a time. Nothing here holds more than one chunk of rows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from miner.records import Interview, Unit, interview_from_record
from miner.repository import _INTERVIEW_COLUMNS
from miner.repository_jobs import _UNIT_COLUMNS


@contextmanager
def planned_for_all_rows(conn: psycopg.Connection) -> Iterator[None]:
    """Cursors declared inside are planned for all their rows, not their first 10% (the default
    cursor_tuple_fraction): on a job's fresh, not yet analysed rows the fast-start plan chose a nested
    loop over all of them (the themed sentiment of 100,000 units: minutes instead of seconds). The
    setting is the transaction's and is put back on leaving."""
    previous = conn.execute("SELECT current_setting('cursor_tuple_fraction')").fetchone()[0]
    conn.execute("SELECT set_config('cursor_tuple_fraction', '1', true)")
    try:
        yield
    finally:
        conn.execute("SELECT set_config('cursor_tuple_fraction', %s, true)", (previous,))


def stream_job_units(conn: psycopg.Connection, job_id: str, model: str, size: int = 5000
                     ) -> Iterator[list[tuple[Any, ...]]]:
    """The job's opinion units in their fixed order, `size` rows at a time, each row
    (unit_id, interview_id, study, session_model, answer_index, answer, answer_hash, stance,
    theme_id or None, vector bytes or None, dim or None); the vector is the stored one (float16,
    or float32 from before migration 013). A server-side cursor: needs the caller's transaction."""
    with conn.cursor(name=f"job_units_{job_id.replace('-', '')}", binary=True) as cur:
        cur.itersize = size
        with planned_for_all_rows(conn):  # DECLARE: planned here
            cur.execute(
                """SELECT u.unit_id, u.interview_id, u.study, u.session_model, u.answer_index, u.answer,
                          u.answer_hash, u.stance, a.theme_id, e.vector, e.dim
                   FROM job_units j JOIN units u USING (unit_id)
                   LEFT JOIN assignments a ON a.job_id = j.job_id AND a.unit_id = j.unit_id
                   LEFT JOIN embeddings e ON e.answer_hash = u.answer_hash AND e.model = %s
                   WHERE j.job_id = %s ORDER BY j.position""",
                (model, job_id))
        while rows := cur.fetchmany(size):
            yield rows


def stream_interviews(conn: psycopg.Connection, study: str, size: int = 5000) -> Iterator[list[Interview]]:
    """All interviews of a study in load_interviews's order, `size` at a time (server-side cursor)."""
    with conn.cursor(name=f"interviews_{abs(hash(study))}", row_factory=dict_row) as cur:
        cur.itersize = size
        cur.execute(
            f"""SELECT {_INTERVIEW_COLUMNS} FROM interviews WHERE study = %s ORDER BY interview_id""", (study,))
        while rows := cur.fetchmany(size):
            yield [interview_from_record(row.pop("record"), **row) for row in rows]


def job_interview_ids(conn: psycopg.Connection, job_id: str) -> list[str]:
    """The interviews of a job's answers, sorted (the order load_job_interviews uses)."""
    return [r[0] for r in conn.execute(
        """SELECT DISTINCT u.interview_id FROM job_answers j JOIN units u USING (unit_id)
           WHERE j.job_id = %s ORDER BY 1""", (job_id,))]


def load_interviews_in(conn: psycopg.Connection, interview_ids: Sequence[str]) -> list[Interview]:
    """These interviews, ordered by id."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"""SELECT {_INTERVIEW_COLUMNS} FROM interviews WHERE interview_id = ANY(%s) ORDER BY interview_id""",
            (list(interview_ids),)).fetchall()
    return [interview_from_record(row.pop("record"), **row) for row in rows]


def load_job_answers_in(conn: psycopg.Connection, job_id: str, interview_ids: Sequence[str]) -> list[Unit]:
    """The job's answer units of these interviews, in the job's fixed order."""
    return _job_rows_in(conn, "job_answers", job_id, interview_ids)


def load_job_units_in(conn: psycopg.Connection, job_id: str, interview_ids: Sequence[str]) -> list[Unit]:
    """The job's opinion units of these interviews, in the job's fixed order."""
    return _job_rows_in(conn, "job_units", job_id, interview_ids)


def _job_rows_in(conn: psycopg.Connection, table: str, job_id: str, interview_ids: Sequence[str]) -> list[Unit]:
    if table not in ("job_answers", "job_units"):  # the table is a name, never input
        raise ValueError(f"not a job's unit table: {table}")
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"""SELECT {_UNIT_COLUMNS} FROM {table} j JOIN units u USING (unit_id)
                WHERE j.job_id = %s AND u.interview_id = ANY(%s) ORDER BY j.position""",
            (job_id, list(interview_ids))).fetchall()
    return [Unit(**row) for row in rows]
