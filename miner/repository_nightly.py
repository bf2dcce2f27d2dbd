"""SQL of incremental nightly jobs (miner.nightly_steps): the interviews a published job has not
seen, copying that job's rows forward, and the stored per-interview values the statistics are
computed from (by every job's understand step, miner.steps.job_statistics). Small named functions
over a connection, parameterized, no commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from miner.records import Interview, Unit
from miner.repository import _INTERVIEW_COLUMNS, interview_from_record
from miner.stats import InterviewEngagement, RatingCell, UnitOf

# Rows keyed by (job, unit) or (job, interview) that a nightly job takes over from the job it
# extends for the interviews that job had seen. A fixed list of names, never input.
PER_UNIT = ("job_answers", "job_units", "assignments", "unit_insights")
PER_INTERVIEW = ("ratings", "quality_verdicts", "interview_engagement")
PER_THEME = ("theme_opinions", "theme_sentences")


def has_rows(conn: psycopg.Connection, table: str, job_id: str) -> bool:
    """Whether the job has any row in `table` (an EXISTS: stops at the first, where a count read them all)."""
    assert table in PER_UNIT + PER_INTERVIEW
    return conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE job_id = %s)").format(sql.Identifier(table)),
                        (job_id,)).fetchone()[0]


def rows_in_order(conn: psycopg.Connection, table: str, job_id: str) -> int:
    """Rows of a job's ordered table (job_answers, job_units: positions 0…n-1), read off its primary
    key's last position rather than counted, so a nightly job's steps pay nothing per old row to learn
    where the new rows start."""
    assert table in ("job_answers", "job_units")
    return conn.execute(sql.SQL("SELECT coalesce(max(position) + 1, 0) FROM {} WHERE job_id = %s")
                        .format(sql.Identifier(table)), (job_id,)).fetchone()[0]


def copy_rows(conn: psycopg.Connection, table: str, source_job: str, job_id: str,
              skip_themes: Sequence[int] = ()) -> int:
    """Copy a job's rows of `table` to another job (same values, the new job id), for a per-theme
    table leaving out `skip_themes`; returns rows copied."""
    assert table in PER_UNIT + PER_INTERVIEW + PER_THEME
    columns = [r[0] for r in conn.execute(
        """SELECT column_name FROM information_schema.columns
           WHERE table_schema = current_schema() AND table_name = %s AND column_name <> 'job_id'
           ORDER BY ordinal_position""", (table,)).fetchall()]
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    skip = sql.SQL(" AND NOT (theme_id = ANY(%s))" if table in PER_THEME else "")
    params = (job_id, source_job) + (([int(t) for t in skip_themes],) if table in PER_THEME else ())
    cur = conn.execute(sql.SQL("INSERT INTO {table} (job_id, {names}) SELECT %s, {names} FROM {table} "
                               "WHERE job_id = %s{skip} ON CONFLICT DO NOTHING").format(
                                   table=sql.Identifier(table), names=names, skip=skip), params)
    return max(cur.rowcount, 0)


def load_unseen_interviews(conn: psycopg.Connection, study: str, job_id: str) -> list[Interview]:
    """The study's interviews with no answer in the job (new since it ran), in a stable order."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"""SELECT {_INTERVIEW_COLUMNS} FROM interviews i
                WHERE study = %s AND NOT EXISTS (
                    SELECT 1 FROM job_answers j JOIN units u USING (unit_id)
                    WHERE j.job_id = %s AND u.interview_id = i.interview_id)
                ORDER BY interview_id""", (study, job_id)).fetchall()
    return [interview_from_record(row.pop("record"), **row) for row in rows]


def load_interviews_of_answers(conn: psycopg.Connection, job_id: str, offset: int) -> list[Interview]:
    """The interviews of the job's answers from position `offset` on (a nightly job's new ones)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"""SELECT {_INTERVIEW_COLUMNS} FROM interviews
                WHERE interview_id IN (SELECT u.interview_id FROM job_answers j JOIN units u USING (unit_id)
                                       WHERE j.job_id = %s AND j.position >= %s)
                ORDER BY interview_id""", (job_id, offset)).fetchall()
    return [interview_from_record(row.pop("record"), **row) for row in rows]


def load_job_answers_from(conn: psycopg.Connection, job_id: str, offset: int) -> list[Unit]:
    """The job's answer units from position `offset` on."""
    from miner.repository_jobs import _UNIT_COLUMNS

    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"""SELECT {_UNIT_COLUMNS} FROM job_answers j JOIN units u USING (unit_id)
                WHERE j.job_id = %s AND j.position >= %s ORDER BY j.position""", (job_id, offset)).fetchall()
    return [Unit(**row) for row in rows]


def load_unit_themes(conn: psycopg.Connection, job_id: str) -> tuple[list[UnitOf], list[str], np.ndarray]:
    """The job's opinion units in position order: (where each comes from, its answer hash, theme id or -1)."""
    rows = conn.execute(
        """SELECT u.unit_id, u.interview_id, u.session_model, u.answer_hash, coalesce(a.theme_id, -1)
           FROM job_units j JOIN units u USING (unit_id)
           LEFT JOIN assignments a ON a.job_id = j.job_id AND a.unit_id = j.unit_id
           WHERE j.job_id = %s ORDER BY j.position""", (job_id,)).fetchall()
    return ([UnitOf(r[0], r[1], r[2]) for r in rows], [r[3] for r in rows],
            np.array([r[4] for r in rows], dtype=np.int64))


def load_theme_members(conn: psycopg.Connection, job_id: str, theme_ids: Sequence[int]) -> tuple[list[Unit], np.ndarray]:
    """The job's opinion units assigned to these themes, in position order, and their theme ids."""
    from miner.repository_jobs import _UNIT_COLUMNS

    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"""SELECT {_UNIT_COLUMNS}, a.theme_id FROM job_units j JOIN units u USING (unit_id)
                JOIN assignments a ON a.job_id = j.job_id AND a.unit_id = j.unit_id
                WHERE j.job_id = %s AND a.theme_id = ANY(%s) ORDER BY j.position""",
            (job_id, [int(t) for t in theme_ids])).fetchall()
    return [Unit(**{k: v for k, v in row.items() if k != "theme_id"}) for row in rows], \
        np.array([row["theme_id"] for row in rows], dtype=np.int64)


def load_theme_texts(conn: psycopg.Connection, job_id: str, per_theme: int) -> dict[int, list[str]]:
    """Up to `per_theme` answers of each of the job's themes (the first by position)."""
    rows = conn.execute(
        """SELECT theme_id, answer FROM (
               SELECT a.theme_id, u.answer, row_number() OVER (PARTITION BY a.theme_id ORDER BY j.position) AS n
               FROM job_units j JOIN units u USING (unit_id)
               JOIN assignments a ON a.job_id = j.job_id AND a.unit_id = j.unit_id
               WHERE j.job_id = %s AND a.theme_id IS NOT NULL) ranked
           WHERE n <= %s ORDER BY theme_id, n""", (job_id, per_theme)).fetchall()
    texts: dict[int, list[str]] = {}
    for theme_id, answer in rows:
        texts.setdefault(theme_id, []).append(answer)
    return texts


def add_assignments(conn: psycopg.Connection, job_id: str, assignments: dict[str, int | None]) -> None:
    """Insert or change these units' theme in the job."""
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO assignments (job_id, unit_id, theme_id) VALUES (%s, %s, %s)
               ON CONFLICT (job_id, unit_id) DO UPDATE SET theme_id = excluded.theme_id""",
            [(job_id, unit_id, theme_id) for unit_id, theme_id in assignments.items()])


def load_engagement(conn: psycopg.Connection, job_id: str) -> list[InterviewEngagement]:
    rows = conn.execute(
        """SELECT interview_id, session_model, chat_rounds, user_words, user_turns, model_words, model_turns,
                  session_seconds, interview_seconds, answer_words, answers
           FROM interview_engagement WHERE job_id = %s ORDER BY interview_id""", (job_id,)).fetchall()
    return [InterviewEngagement(*r) for r in rows]


def low_quality_interviews(conn: psycopg.Connection, job_id: str) -> set[str]:
    return {r[0] for r in conn.execute("SELECT interview_id FROM quality_verdicts WHERE job_id = %s AND low_quality",
                                       (job_id,))}


def _included(alias: str) -> str:
    """SQL leaving out the job's low-quality interviews when %(exclude)s (the statistics' `excluded`);
    `alias` is a fixed table alias of the query, never input."""
    return f"""NOT (%(exclude)s AND {alias}.interview_id IN (
        SELECT q.interview_id FROM quality_verdicts q WHERE q.job_id = %(job)s AND q.low_quality))"""


def included_rating_cells(conn: psycopg.Connection, job_id: str, exclude_low_quality: bool) -> list[RatingCell]:
    """The job's ratings per model × dimension, aggregated in SQL (one row per cell, not per rating):
    scores in interview order (the order the bootstrap resamples), each interview's key (its rank
    among the job's included interviews) and how many are explicit; the low-quality interviews'
    left out when `exclude_low_quality`."""
    rows = conn.execute(f"""
        SELECT session_model, dimension, count(*) FILTER (WHERE explicit),
               array_agg(key ORDER BY interview_id), array_agg(score ORDER BY interview_id)
        FROM (SELECT r.interview_id, r.session_model, r.dimension, r.score, r.source = 'explicit' AS explicit,
                     dense_rank() OVER (ORDER BY r.interview_id) AS key
              FROM ratings r WHERE r.job_id = %(job)s AND {_included("r")}) included
        GROUP BY 1, 2""", {"job": job_id, "exclude": exclude_low_quality})
    # Row by row off the cursor: one cell's scores are Python floats at a time, then an array.
    return [RatingCell(model, dimension, np.array(keys, dtype=np.int64), np.array(scores, dtype=float), explicit)
            for model, dimension, explicit, keys, scores in rows]


def included_themed(conn: psycopg.Connection, job_id: str, exclude_low_quality: bool
                    ) -> tuple[dict[tuple[int, str], int], dict[tuple[int, str], np.ndarray]]:
    """Per (theme id, model), from one pass over the job's themed opinion units: how many interviews
    have a unit of the theme (miner.stats.prevalence_from), and the units' answers' stored sentiment
    in the job's order; aggregated in SQL (one row per theme × model, not per unit)."""
    with_theme, sentiment = {}, {}
    for theme, model, interviews, values in conn.execute(f"""
            SELECT a.theme_id, u.session_model, count(DISTINCT u.interview_id),
                   array_agg(coalesce(i.sentiment, 0) ORDER BY j.position)
            FROM job_units j JOIN units u USING (unit_id)
            JOIN assignments a ON a.job_id = j.job_id AND a.unit_id = j.unit_id
            LEFT JOIN unit_insights i ON i.job_id = j.job_id AND i.unit_id = coalesce(u.answer_unit_id, u.unit_id)
            WHERE j.job_id = %(job)s AND a.theme_id >= 0 AND {_included("u")}
            GROUP BY 1, 2""", {"job": job_id, "exclude": exclude_low_quality}):
        with_theme[(int(theme), model)] = interviews
        sentiment[(int(theme), model)] = np.array(values, dtype=float)
    return with_theme, sentiment


def included_totals(conn: psycopg.Connection, job_id: str, exclude_low_quality: bool) -> dict[str, int]:
    """Per model, the interviews with an answer or opinion unit in the job: theme prevalence's
    denominators (miner.stats.prevalence_from)."""
    return dict(conn.execute(f"""
        SELECT u.session_model, count(DISTINCT u.interview_id)
        FROM (SELECT unit_id FROM job_answers WHERE job_id = %(job)s
              UNION ALL SELECT unit_id FROM job_units WHERE job_id = %(job)s) j JOIN units u USING (unit_id)
        WHERE {_included("u")} GROUP BY 1""", {"job": job_id, "exclude": exclude_low_quality}).fetchall())


def restate_tree_prevalence(conn: psycopg.Connection, job_id: str, exclude_low_quality: bool) -> None:
    """Recount the job's tree_node_model_stats.prevalence as theme prevalence is counted (included_themed
    over included_totals: low-quality interviews left out when `exclude_low_quality`), so the report's
    explorer and theme cards show one number per theme × model. The SQL function is migration 022's,
    which ran it once for the jobs stored before it."""
    conn.execute("SELECT restate_tree_prevalence(%s, %s)", (job_id, exclude_low_quality))


def insight_counts(conn: psycopg.Connection, job_id: str) -> dict[str, Any]:
    """The job's rating and quality counts, from its stored rows."""
    row = conn.execute(
        """SELECT (SELECT count(*) FROM ratings WHERE job_id = %(job)s),
                  (SELECT count(*) FROM ratings WHERE job_id = %(job)s AND source = 'explicit'),
                  (SELECT count(*) FROM quality_verdicts WHERE job_id = %(job)s AND low_quality)""",
        {"job": job_id}).fetchone()
    return {"ratings": row[0], "explicit_ratings": row[1], "low_quality": row[2]}


def count_interviews(conn: psycopg.Connection, job_id: str) -> tuple[int, int]:
    """(interviews, answers without an opinion) among the job's answers."""
    return conn.execute(
        """SELECT count(DISTINCT u.interview_id), count(*) FILTER (WHERE j.no_opinion)
           FROM job_answers j JOIN units u USING (unit_id) WHERE j.job_id = %s""", (job_id,)).fetchone()


def labelled_sizes(conn: psycopg.Connection, job_id: str) -> dict[int, int]:
    """Theme → its size when its label was written (its size in the job when never carried over)."""
    return dict(conn.execute("SELECT theme_id, coalesce(labelled_answers, answers) FROM themes WHERE job_id = %s",
                             (job_id,)).fetchall())


def set_labelled_sizes(conn: psycopg.Connection, job_id: str, sizes: dict[int, int]) -> None:
    with conn.cursor() as cur:
        cur.executemany("UPDATE themes SET labelled_answers = %s WHERE job_id = %s AND theme_id = %s",
                        [(size, job_id, theme_id) for theme_id, size in sizes.items()])
