"""Saving an ingest: valid interviews stored once, rejected records quarantined."""

from __future__ import annotations

import json
import logging

import psycopg

from miner import repository
from miner.ingest import IngestResult, raw_excerpt
from miner.records import IngestSummary, Interview, Rejected

logger = logging.getLogger(__name__)

# What one record can make PostgreSQL (or the JSON dump on the way) refuse: bad values, a key too
# large for an index, a constraint. A lost connection is none of these and still ends the command.
_UNSTORABLE = (psycopg.DataError, psycopg.IntegrityError, psycopg.errors.ProgramLimitExceeded,
               ValueError, RecursionError)


def store_ingest(conn: psycopg.Connection, study: str, result: IngestResult) -> IngestSummary:
    """Store what an ingest read, in one transaction; duplicates (same content) are counted, not stored.

    A record the database refuses is quarantined with its reason; the others are stored all the same.
    """
    with conn.transaction():
        try:
            with conn.transaction():  # a savepoint: a refused batch is retried record by record
                stored, unstorable = repository.save_interviews(conn, result.interviews), []
        except _UNSTORABLE as exc:
            logger.warning("ingest: the database refused the batch (%s); storing record by record", exc)
            stored, unstorable = _save_one_by_one(conn, result.interviews)
        rejected = (*result.rejected, *unstorable)
        repository.save_rejected(conn, study, rejected)
    return IngestSummary(stored=stored, duplicates=len(result.interviews) - len(unstorable) - stored,
                         quarantined=len(rejected), rejected=rejected)


def _save_one_by_one(conn: psycopg.Connection, interviews: tuple[Interview, ...]) -> tuple[int, list[Rejected]]:
    stored, refused = 0, []
    for interview in interviews:
        try:
            with conn.transaction():
                stored += repository.save_interviews(conn, [interview])
        except _UNSTORABLE as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            refused.append(Rejected(interview.source_file, interview.source_position,
                                    f"record {interview.source_position}: the database refused it: {reason}",
                                    raw_excerpt(_dump(interview.record))))
    return stored, refused


def _dump(record: object) -> str:
    try:
        return json.dumps(record, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):
        return ""  # what cannot be dumped cannot be shown either; the error says why
