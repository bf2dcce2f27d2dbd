"""Connections and schema migrations (numbered .sql files in schemas/migrations, applied once)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "schemas" / "migrations"
# Any fixed number: serialises concurrent migrators (CLI and workers starting together).
_MIGRATION_LOCK = 7_311_540


def connect(url: str, **kwargs) -> psycopg.Connection:
    """A psycopg connection; the caller commits."""
    return psycopg.connect(url, **kwargs)


def sibling(conn: psycopg.Connection, **kwargs) -> psycopg.Connection:
    """A second connection to `conn`'s database, as the same user: for writes that must outlive the
    transaction open on `conn`."""
    return psycopg.connect(conn.info.dsn, password=conn.info.password, **kwargs)


def create_database(conn: psycopg.Connection, name: str) -> bool:
    """Create a database on the server (autocommit connection) unless it exists; returns whether it did."""
    if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None:
        return False
    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return True


@contextmanager
def temporary_database(admin_url: str, prefix: str = "miner_tmp") -> Iterator[str]:
    """The URL of a new, migrated database of its own (tests, benchmarks); dropped at the end whatever happens."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        create_database(admin, name)
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
    try:
        with psycopg.connect(url) as conn:
            migrate(conn)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


def applied_migrations(conn: psycopg.Connection) -> set[str]:
    """Names of applied migrations; reads only, never creates the bookkeeping table."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]
    if not exists:
        return set()
    return {name for (name,) in conn.execute("SELECT name FROM schema_migrations")}


def pending_migrations(conn: psycopg.Connection) -> list[Path]:
    done = applied_migrations(conn)
    return [path for path in migration_files() if path.name not in done]


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply pending migrations, each in its own transaction; returns their names."""
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        for path in pending_migrations(conn):
            with conn.transaction():
                conn.execute(path.read_text())
                conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (path.name,))
            applied.append(path.name)
            logger.info("db: applied migration %s", path.name)
    return applied
