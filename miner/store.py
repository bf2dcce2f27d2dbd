"""Saving an ingest: valid interviews stored once, rejected records quarantined."""

from __future__ import annotations

import psycopg

from miner import repository
from miner.ingest import IngestResult
from miner.records import IngestSummary


def store_ingest(conn: psycopg.Connection, study: str, result: IngestResult) -> IngestSummary:
    """Store what an ingest read, in one transaction; duplicates (same content) are counted, not stored."""
    with conn.transaction():
        stored = repository.save_interviews(conn, result.interviews)
        repository.save_rejected(conn, study, result.rejected)
    return IngestSummary(stored=stored, duplicates=len(result.interviews) - stored,
                         quarantined=len(result.rejected), rejected=result.rejected)
