"""SQL for a study's input and what the stages store: interviews, quarantine, units, the embedding
cache, theme views, the LLM cache and ledger, and the understanding tables. Jobs and their steps are
in repository_jobs, per-job themes and the registry in repository_runs, the reader's contract in
repository_reporting. Small named functions over a connection; writes are upserts keyed on natural
ids, so running a stage twice leaves the same rows; they never commit (the caller owns the transaction).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from miner.records import Interview, Rejected, Unit, interview_from_record
from miner.records import CachedReply, LLMCall, ThemeModelSentence, ThemeOpinion
from miner.records import QualityVerdict, Rating, UnitInsight


def save_interviews(conn: psycopg.Connection, interviews: Sequence[Interview]) -> int:
    """Insert interviews not stored yet; returns how many were new."""
    stored = 0
    with conn.cursor() as cur:
        for i in interviews:
            cur.execute(
                """INSERT INTO interviews (interview_id, study, external_id, session_model,
                       interview_model, record, source_file, source_position)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (interview_id) DO NOTHING""",
                (i.interview_id, i.study, i.external_id, i.session_model, i.interview_model,
                 Jsonb(i.record), i.source_file, i.source_position),
            )
            stored += cur.rowcount
    return stored


def save_rejected(conn: psycopg.Connection, study: str, rejected: Iterable[Rejected]) -> None:
    """Record rejected records in quarantine (once per file, position and content)."""
    rows = [
        (study, r.source_file, r.source_position, r.error, r.raw,
         hashlib.sha256(r.raw.encode("utf-8")).hexdigest())
        for r in rejected
    ]
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO quarantine (study, source_file, source_position, error, raw_excerpt, raw_hash)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (study, source_file, source_position, raw_hash) DO NOTHING""",
            rows,
        )


def load_quarantine(conn: psycopg.Connection, study: str) -> list[dict[str, Any]]:
    """Quarantined records of a study, oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT source_file, source_position, error, raw_excerpt FROM quarantine
               WHERE study = %s ORDER BY quarantine_id""",
            (study,),
        ).fetchall()


_INTERVIEW_COLUMNS = "interview_id, study, session_model, interview_model, record, source_file, source_position, external_id"


def load_interviews(conn: psycopg.Connection, study: str) -> list[Interview]:
    """All interviews of a study, in a stable order."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT {_INTERVIEW_COLUMNS} FROM interviews WHERE study = %s ORDER BY interview_id",
                           (study,)).fetchall()
    return [interview_from_record(row.pop("record"), **row) for row in rows]


def load_job_interviews(conn: psycopg.Connection, job_id: str) -> list[Interview]:
    """The interviews of a job's fixed answers (its snapshot), in the same order as load_interviews."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"""SELECT {_INTERVIEW_COLUMNS} FROM interviews
                WHERE interview_id IN (SELECT u.interview_id FROM job_answers j JOIN units u USING (unit_id)
                                       WHERE j.job_id = %s)
                ORDER BY interview_id""",
            (job_id,)).fetchall()
    return [interview_from_record(row.pop("record"), **row) for row in rows]


def count_interviews(conn: psycopg.Connection, study: str) -> int:
    return conn.execute("SELECT count(*) FROM interviews WHERE study = %s", (study,)).fetchone()[0]


def save_units(conn: psycopg.Connection, units: Sequence[Unit]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO units (unit_id, interview_id, study, session_model, answer_index,
                   question, answer, answer_hash, answer_unit_id, span_start, span_end, full_answer, stance, source)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (unit_id) DO NOTHING""",
            [(u.unit_id, u.interview_id, u.study, u.session_model, u.answer_index, u.question,
              u.answer, u.answer_hash, u.answer_unit_id, u.span_start, u.span_end, u.full_answer, u.stance, u.source)
             for u in units],
        )


def save_unit_stances(conn: psycopg.Connection, stances: dict[str, str]) -> None:
    """The stance of opinion units (a function of the unit's text and the embedding model)."""
    with conn.cursor() as cur:
        cur.executemany("UPDATE units SET stance = %s WHERE unit_id = %s AND stance IS DISTINCT FROM %s",
                        [(stance, unit_id, stance) for unit_id, stance in stances.items()])


def load_embeddings(conn: psycopg.Connection, model: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
    """Cached vectors for these answer hashes under this embedding model.

    Rows (float16, or float32 from before migration 013) stream into one float32 matrix and the dict holds views of its rows: fetching them all
    first held a bytes object and a tuple per vector, ~2.5× the vectors' size (370 MB at 84k answers).
    """
    wanted = list(set(hashes))
    found: dict[str, np.ndarray] = {}
    matrix: np.ndarray | None = None
    filled = 0
    with conn.cursor(binary=True) as cur:
        rows = cur.stream(
            "SELECT answer_hash, dim, vector FROM embeddings WHERE model = %s AND answer_hash = ANY(%s)",
            (model, wanted), size=2000)
        for answer_hash, dim, vector in rows:
            # float16 since migration 013; older float32 rows are read at float16 precision (miner.compact)
            row = np.frombuffer(vector, dtype="<f2" if len(vector) == 2 * dim else "<f4").astype(np.float16)
            if matrix is None:
                matrix = np.empty((len(wanted), row.shape[0]), dtype=np.float32)
            if row.shape[0] != matrix.shape[1]:  # not the width of the others: keep it on its own
                found[answer_hash] = row
                continue
            matrix[filled] = row
            found[answer_hash] = matrix[filled]
            filled += 1
    return found


def save_embeddings(conn: psycopg.Connection, model: str, vectors: dict[str, np.ndarray]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO embeddings (answer_hash, model, dim, vector) VALUES (%s, %s, %s, %s)
               ON CONFLICT (answer_hash, model) DO NOTHING""",
            [(h, model, v.shape[0], np.asarray(v, dtype="<f2").tobytes()) for h, v in vectors.items()],
        )


def theme_by_model(conn: psycopg.Connection, study: str) -> list[dict[str, Any]]:
    """The theme_by_model view for one study."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT theme_id, label, stance, session_model, answers, interviews, share
               FROM theme_by_model WHERE study = %s ORDER BY theme_id, session_model""",
            (study,),
        ).fetchall()


def theme_summary(conn: psycopg.Connection, study: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT theme_id, label, keywords, labeller, answers, interviews, quotes
               FROM theme_summary WHERE study = %s ORDER BY theme_id""",
            (study,),
        ).fetchall()


# --- LLM layer: response cache, call ledger, polarity and per-model sentences ---------------------


def load_llm_cache(conn: psycopg.Connection, keys: Iterable[str]) -> dict[str, CachedReply]:
    """Cached replies for these request hashes."""
    rows = conn.execute(
        "SELECT cache_key, content, prompt_tokens, completion_tokens FROM llm_cache WHERE cache_key = ANY(%s)",
        (list(set(keys)),),
    ).fetchall()
    return {key: CachedReply(content, prompt, completion) for key, content, prompt, completion in rows}


def save_llm_cache(conn: psycopg.Connection, key: str, base_url: str, model: str, request: dict[str, Any],
                   reply: CachedReply, valid: bool) -> None:
    """Keep a reply, and whether it passed validation; the first one stored for a key wins."""
    conn.execute(
        """INSERT INTO llm_cache (cache_key, base_url, model, request, content, prompt_tokens, completion_tokens,
               valid)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (cache_key) DO NOTHING""",
        (key, base_url, model, Jsonb(request), reply.content, reply.prompt_tokens, reply.completion_tokens, valid),
    )


def save_llm_calls(conn: psycopg.Connection, job_id: str | None, calls: Sequence[LLMCall]) -> None:
    """Append ledger rows (the ledger is a log: one row per call, never updated)."""
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO llm_calls (job_id, purpose, theme_id, model, cache_key, repair, cache_hit,
                   attempts, prompt_tokens, completion_tokens, latency_ms, outcome, error)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            [(job_id, c.purpose, c.theme_id, c.model, c.cache_key, c.repair, c.cache_hit, c.attempts,
              c.prompt_tokens, c.completion_tokens, c.latency_ms, c.outcome, c.error) for c in calls],
        )


def save_theme_opinions(conn: psycopg.Connection, job_id: str, opinions: Sequence[ThemeOpinion]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO theme_opinions (job_id, theme_id, polarity, labeller, fallback)
               VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (job_id, theme_id) DO UPDATE SET polarity = excluded.polarity,
                   labeller = excluded.labeller, fallback = excluded.fallback""",
            [(job_id, o.theme_id, o.polarity, o.labeller, o.fallback) for o in opinions],
        )


def save_theme_sentences(conn: psycopg.Connection, job_id: str, sentences: Sequence[ThemeModelSentence]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO theme_sentences (job_id, theme_id, session_model, sentence, unit_ids, labeller)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (job_id, theme_id, session_model) DO UPDATE SET sentence = excluded.sentence,
                   unit_ids = excluded.unit_ids, labeller = excluded.labeller""",
            [(job_id, s.theme_id, s.session_model, s.sentence, list(s.unit_ids), s.labeller) for s in sentences],
        )


def llm_cost(conn: psycopg.Connection, job_id: str) -> list[dict[str, Any]]:
    """The llm_cost view for one job: one row per purpose and model."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT purpose, model, calls, requests, cache_hits, prompt_tokens, completion_tokens,
                      billed_tokens, cached_tokens, ok, invalid, failed, skipped, latency_ms
               FROM llm_cost WHERE job_id = %s ORDER BY purpose, model""",
            (job_id,),
        ).fetchall()


def llm_errors(conn: psycopg.Connection, job_id: str, limit: int = 3) -> list[tuple[str, int]]:
    """The job's most frequent LLM errors (failed or invalid calls) with how many calls each."""
    return conn.execute(
        """SELECT error, count(*) FROM llm_calls
           WHERE job_id = %s AND outcome IN ('failed', 'invalid') AND error IS NOT NULL
           GROUP BY error ORDER BY count(*) DESC, error LIMIT %s""",
        (job_id, limit),
    ).fetchall()


def theme_model_sentences(conn: psycopg.Connection, study: str) -> list[dict[str, Any]]:
    """The theme_model_sentences view for one study."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT theme_id, label, polarity, session_model, sentence, unit_ids, answers, share, labeller
               FROM theme_model_sentences WHERE study = %s ORDER BY theme_id, session_model""",
            (study,),
        ).fetchall()


# A job's per-answer and per-interview insight rows (written part by part) and its statistics
# (written once, computed from those rows: miner.steps.job_statistics).
_INSIGHT_ROWS = ("unit_insights", "ratings", "quality_verdicts", "interview_engagement")
_STATISTICS_TABLES = ("engagement_stats", "rating_stats", "prevalence_stats", "prevalence_tests", "correlation_stats",
                      "sentiment_stats", "insight_runs")


def clear_insights(conn: psycopg.Connection, job_id: str) -> None:
    """Delete a job's per-answer and per-interview insight rows (before its parts are added)."""
    for table in _INSIGHT_ROWS:  # a fixed list of names, never input
        conn.execute(f"DELETE FROM {table} WHERE job_id = %s", (job_id,))


def add_insights(conn: psycopg.Connection, job_id: str, insights: Sequence[UnitInsight], ratings: Sequence[Rating],
                 verdicts: Sequence[QualityVerdict], engagement: Sequence[Any]) -> None:
    """Add one part's rows: dimensions and sentiment per answer, ratings, quality verdicts and
    engagement sums (miner.stats.InterviewEngagement) per interview. A job writes its interviews in
    parts (miner.steps.understand), a nightly job only its new ones (miner.nightly_steps)."""
    rows = {
        """INSERT INTO unit_insights (job_id, unit_id, dimension, dimension_confidence, dimension_source, sentiment)
           VALUES (%s, %s, %s, %s, %s, %s)""":
            [(job_id, x.unit_id, x.dimension, x.dimension_confidence, x.dimension_source, x.sentiment)
             for x in insights],
        """INSERT INTO ratings (job_id, interview_id, session_model, dimension, score, source, evidence, unit_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""":
            [(job_id, r.interview_id, r.session_model, r.dimension, r.score, r.source, r.evidence, r.unit_id)
             for r in ratings],
        """INSERT INTO quality_verdicts (job_id, interview_id, session_model, low_quality, reasons, details)
           VALUES (%s, %s, %s, %s, %s, %s)""":
            [(job_id, v.interview_id, v.session_model, v.low_quality, list(v.reasons), Jsonb(v.details))
             for v in verdicts],
        """INSERT INTO interview_engagement (job_id, interview_id, session_model, chat_rounds, user_words,
               user_turns, model_words, model_turns, session_seconds, interview_seconds, answer_words, answers)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""":
            [(job_id, r.interview_id, r.session_model, r.chat_rounds, r.user_words, r.user_turns, r.model_words,
              r.model_turns, r.session_seconds, r.interview_seconds, r.answer_words, r.answers) for r in engagement],
    }
    with conn.cursor() as cur:
        for sql, params in rows.items():
            if params:
                cur.executemany(sql, params)


def save_statistics(conn: psycopg.Connection, job_id: str, run: dict[str, Any], statistics: Any) -> None:
    """Replace a job's insight run (`run`: estimator, correction, counts) and its statistics
    (a miner.stats.Statistics)."""
    for table in _STATISTICS_TABLES:  # a fixed list of names, never input
        conn.execute(f"DELETE FROM {table} WHERE job_id = %s", (job_id,))
    conn.execute(
        """INSERT INTO insight_runs (job_id, rating_estimator, correction, alpha, low_quality_included,
               interviews, excluded) VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (job_id, run["rating_estimator"], run["correction"], run["alpha"], run["low_quality_included"],
         run["interviews"], run["excluded"]))
    rows = {
        """INSERT INTO engagement_stats (job_id, session_model, interviews, excluded, chat_rounds,
               user_words_per_turn, model_words_per_turn, answer_words, session_seconds, session_seconds_median,
               interview_seconds, interview_seconds_median)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""":
            [(job_id, e.session_model, e.interviews, e.excluded, e.chat_rounds, e.user_words_per_turn,
              e.model_words_per_turn, e.answer_words, e.session_seconds, e.session_seconds_median,
              e.interview_seconds, e.interview_seconds_median) for e in statistics.engagement],
        """INSERT INTO rating_stats (job_id, session_model, dimension, n, mean, ci_low, ci_high, n_explicit)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""":
            [(job_id, r.session_model, r.dimension, r.n, r.mean, r.ci_low, r.ci_high, r.n_explicit)
             for r in statistics.ratings],
        """INSERT INTO prevalence_stats (job_id, theme_id, session_model, interviews_with, interviews, prevalence,
               ci_low, ci_high, rest_prevalence, difference, cohens_h, p_value, p_adjusted, significant)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""":
            [(job_id, p.theme_id, p.session_model, p.interviews_with, p.interviews, p.prevalence, p.ci_low,
              p.ci_high, p.rest_prevalence, p.difference, p.cohens_h, p.p_value, p.p_adjusted, p.significant)
             for p in statistics.prevalence],
        """INSERT INTO prevalence_tests (job_id, theme_id, statistic, dof, p_value, p_adjusted, cramers_v, significant)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""":
            [(job_id, t.theme_id, t.statistic, t.dof, t.p_value, t.p_adjusted, t.cramers_v, t.significant)
             for t in statistics.theme_tests],
        """INSERT INTO correlation_stats (job_id, dimension_a, dimension_b, spearman, p_value, n)
           VALUES (%s, %s, %s, %s, %s, %s)""":
            [(job_id, c.dimension_a, c.dimension_b, c.spearman, c.p_value, c.n) for c in statistics.correlations],
        """INSERT INTO sentiment_stats (job_id, theme_id, session_model, answers, positive_share, negative_share,
               mean_sentiment, bipolar) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""":
            [(job_id, s.theme_id, s.session_model, s.answers, s.positive_share, s.negative_share,
              s.mean_sentiment, s.bipolar) for s in statistics.sentiment],
    }
    with conn.cursor() as cur:
        for sql, params in rows.items():
            if params:
                cur.executemany(sql, params)


def save_interview_readings(conn: psycopg.Connection, job_id: str, model: str,
                            readings: dict[str, dict[str, Any]]) -> None:
    """What the job's LLM call said about each interview (miner.llm_rate.reading_json), for its understand step."""
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO interview_readings (job_id, interview_id, model, reading) VALUES (%s, %s, %s, %s)
               ON CONFLICT (job_id, interview_id) DO UPDATE SET model = excluded.model, reading = excluded.reading""",
            [(job_id, interview_id, model, Jsonb(reading)) for interview_id, reading in readings.items()])


def load_interview_readings(conn: psycopg.Connection, job_id: str, interview_ids: Sequence[str] | None = None
                            ) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """(the model that read them, interview id → reading) for one job, or for these of its interviews;
    (None, {}) when none was read."""
    if interview_ids is None:
        rows = conn.execute("SELECT interview_id, model, reading FROM interview_readings WHERE job_id = %s",
                            (job_id,)).fetchall()
    else:
        rows = conn.execute("""SELECT interview_id, model, reading FROM interview_readings
                               WHERE job_id = %s AND interview_id = ANY(%s)""",
                            (job_id, list(interview_ids))).fetchall()
    return (rows[0][1] if rows else None), {interview_id: reading for interview_id, _, reading in rows}
