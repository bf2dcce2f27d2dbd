"""SQL for reporting: the privacy threshold, scrubbed answer text, the reader role, and reads of
the `reporting` views (schemas/views.md). Same rules as repository.py: small named functions over
a connection, parameterized, no commits."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from miner.records import ReportData

SCHEMA = "reporting"
# Views read per study, and the order their rows come in (the report and exports rely on it).
STUDY_VIEWS: dict[str, str] = {
    "studies": "study",
    "themes": "theme_id",
    "theme_by_model": "theme_id, session_model",
    "theme_model_pairs": "theme_id, model_a, model_b",
    "theme_evidence": "theme_id, session_model, quote_rank NULLS LAST, unit_id",
    "theme_model_sentences": "theme_id, session_model",
    "theme_sentiment": "theme_id, session_model",
    "model_ratings": "dimension, session_model",
    "dimension_correlations": "dimension_a, dimension_b",
    "quality_exclusions": "session_model, reason",
    "no_opinion": "session_model, question",
    "job_history": "created_at, job_id",
    "theme_history": "finished_at, job_id, theme_id, session_model",
    "theme_lineage": "finished_at, job_id, theme_id",
    "llm_cost": "job_id, purpose, model",
    "theme_tree": "position",
    "theme_tree_by_model": "position, session_model",
}
CREATES_THRESHOLD = "006_reporting.sql"  # the migration that creates reporting_settings
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TIMEOUT = re.compile(r"^[0-9]{1,9}(ms|s|min|h)?$")
DEFAULT_READER_TIMEOUT = "1min"


class RoleNameError(ValueError):
    """A reader role name must be a plain lower-case SQL identifier."""


def set_min_interviews_per_cell(conn: psycopg.Connection, k: int) -> int:
    """Set the privacy threshold K the reporting views apply; returns the K it replaces.

    Only `miner db set-threshold` calls this (and `set_initial_threshold` on a new database):
    K is an operator's decision, never a side effect of a command's environment.
    """
    if k < 1:
        raise ValueError(f"privacy threshold K must be at least 1, not {k}")
    previous = conn.execute("SELECT min_interviews_per_cell FROM reporting_settings FOR UPDATE").fetchone()[0]
    conn.execute(
        """UPDATE reporting_settings SET min_interviews_per_cell = %(k)s, updated_at = now(),
                  updated_by = current_user
           WHERE min_interviews_per_cell IS DISTINCT FROM %(k)s""",
        {"k": k},
    )
    return previous


def set_initial_threshold(conn: psycopg.Connection, applied: Sequence[str], k: int) -> None:
    """K of a database this process just created: when `applied` (names of the migrations just run)
    includes the one that creates reporting_settings, write `k` (MINER_MIN_INTERVIEWS_PER_CELL)."""
    if CREATES_THRESHOLD in applied:
        set_min_interviews_per_cell(conn, k)


def min_interviews_per_cell(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT min_interviews_per_cell FROM reporting_settings").fetchone()[0]


def save_scrubbed_units(conn: psycopg.Connection, rows: Sequence[tuple[str, str, str]]) -> None:
    """Store units' scrubbed question and answer, (unit_id, question, answer) rows as
    miner.scrub.scrubbed_units gives them; a rescrub replaces the old text."""
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO scrubbed_units (unit_id, question, answer) VALUES (%s, %s, %s)
               ON CONFLICT (unit_id) DO UPDATE SET question = excluded.question, answer = excluded.answer,
                   scrubbed_at = now()
               WHERE (scrubbed_units.question, scrubbed_units.answer) IS DISTINCT FROM
                     (excluded.question, excluded.answer)""",
            rows,
        )


@dataclass(frozen=True)
class ReaderGrant:
    """What `grant_reader` did: whether it created the role, which role memberships it took away,
    and which other databases of the server still admit the role (through PUBLIC's CONNECT)."""

    created: bool
    revoked_memberships: list[str]
    open_databases: list[str]


def grant_reader(conn: psycopg.Connection, role: str, password: str | None = None,
                 statement_timeout: str = DEFAULT_READER_TIMEOUT) -> ReaderGrant:
    """Create (or fix) a login role that can SELECT the reporting views and nothing else.

    An existing role loses every role membership (pg_read_all_data...), every privilege on this
    database's schemas, tables, sequences and functions, CONNECT and TEMP on other databases where
    this role may revoke them, and its per-database settings. TEMP on this database is revoked from
    PUBLIC, so no role without an explicit grant creates temp objects (miner uses none). Sessions
    start read-only with `statement_timeout`. Views added by later migrations are readable too
    (default privileges of the role running this, which should be the one that migrates).
    """
    if not _ROLE_NAME.match(role):
        raise RoleNameError(f"role name {role!r}: use lower-case letters, digits and _")
    if not _TIMEOUT.match(statement_timeout):
        raise RoleNameError(f"statement timeout {statement_timeout!r}: use e.g. 500ms, 30s, 5min")
    ident, database = sql.Identifier(role), sql.Identifier(conn.info.dbname)
    existing = conn.execute(
        """SELECT rolsuper OR rolcreaterole OR rolname = current_user,
                  EXISTS (SELECT 1 FROM pg_class WHERE relowner = r.oid)
                  OR EXISTS (SELECT 1 FROM pg_namespace WHERE nspowner = r.oid)
                  OR EXISTS (SELECT 1 FROM pg_proc WHERE proowner = r.oid)
                  OR EXISTS (SELECT 1 FROM pg_database WHERE datdba = r.oid)
           FROM pg_roles r WHERE rolname = %s""", (role,)).fetchone()
    if existing is not None and existing[0]:
        raise RoleNameError(f"role {role!r} administers the database; pick a new name for a reader")
    if existing is not None and existing[1]:
        raise RoleNameError(f"role {role!r} owns objects (an owner reads them whatever is granted); "
                            "pick a new name for a reader")
    created = existing is None
    secret = sql.SQL(" PASSWORD {}").format(sql.Literal(password)) if password else sql.SQL("")
    verb = "CREATE ROLE" if created else "ALTER ROLE"
    conn.execute(sql.SQL(verb + " {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION"
                         " NOBYPASSRLS{}").format(ident, secret))
    memberships = [name for (name,) in conn.execute(
        """SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
           JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s ORDER BY 1""", (role,))]
    for group in memberships:
        conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(group), ident))
    schemas = [name for (name,) in conn.execute(
        """SELECT nspname FROM pg_namespace
           WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp)' ORDER BY 1""")]
    statements = [sql.SQL(s).format(schema=sql.Identifier(schema), role=ident) for schema in schemas for s in (
        "REVOKE ALL ON SCHEMA {schema} FROM {role}",
        "REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}",
        "REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {role}",
        "REVOKE ALL ON ALL ROUTINES IN SCHEMA {schema} FROM {role}",
    )]
    statements += [sql.SQL(s).format(role=ident, db=database, timeout=sql.Literal(statement_timeout)) for s in (
        "REVOKE ALL ON DATABASE {db} FROM {role}",
        "REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC",
        "GRANT CONNECT ON DATABASE {db} TO {role}",
        "GRANT USAGE ON SCHEMA reporting TO {role}",
        "GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO {role}",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA reporting GRANT SELECT ON TABLES TO {role}",
        # Unqualified names find the reporting views first; a session starts read-only and is cut
        # off after the timeout (in any database the role reaches: role-wide defaults too).
        "ALTER ROLE {role} IN DATABASE {db} RESET ALL",
        "ALTER ROLE {role} IN DATABASE {db} SET search_path = reporting, public",
        "ALTER ROLE {role} SET default_transaction_read_only = on",
        "ALTER ROLE {role} SET statement_timeout = {timeout}",
        "ALTER ROLE {role} SET idle_in_transaction_session_timeout = {timeout}",
    )]
    for statement in statements:
        conn.execute(statement)
    others = [name for (name,) in conn.execute(
        "SELECT datname FROM pg_database WHERE datname <> current_database() AND datallowconn ORDER BY 1")]
    for other in others:  # grants to the role itself (without the right to revoke: a warning, no error);
        conn.execute(  # PUBLIC's CONNECT there is the server's business (pg_hba.conf)
            sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(sql.Identifier(other), ident))
    open_databases = [name for name in others if conn.execute(
        "SELECT has_database_privilege(%s, %s, 'CONNECT')", (role, name)).fetchone()[0]]
    return ReaderGrant(created, memberships, open_databases)


def reporting_views(conn: psycopg.Connection) -> list[str]:
    """Names of the views in schema reporting, sorted."""
    rows = conn.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = %s AND c.relkind IN ('v', 'm') ORDER BY c.relname""",
        (SCHEMA,),
    ).fetchall()
    return [name for (name,) in rows]


def view_contract(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    """Every reporting view with its description and columns (name, type, description), in order."""
    views: dict[str, dict[str, Any]] = {}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """SELECT c.relname AS view, obj_description(c.oid, 'pg_class') AS view_description,
                      a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
                      col_description(c.oid, a.attnum) AS description
               FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
               WHERE n.nspname = %s AND c.relkind IN ('v', 'm')
               ORDER BY c.relname, a.attnum""",
            (SCHEMA,),
        ).fetchall()
    for row in rows:
        view = views.setdefault(row["view"], {"description": row["view_description"] or "", "columns": []})
        view["columns"].append({"name": row["name"], "type": row["type"], "description": row["description"] or ""})
    return views


def existing_views(conn: psycopg.Connection, names: Sequence[str]) -> set[str]:
    """Which of these reporting views exist in this database."""
    return set(names) & set(reporting_views(conn))


def read_view(conn: psycopg.Connection, view: str, study: str, per_cell: int | None = None) -> list[dict[str, Any]]:
    """Rows of one reporting view for a study, in the view's documented order.

    `per_cell` (theme_evidence only) keeps the first rows of each theme × model: the ranked quotes,
    then the rest by unit id — what a report shows, without reading every answer of a big study.
    """
    if view not in STUDY_VIEWS:
        raise KeyError(f"unknown reporting view {view!r}")
    source = sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(view))
    if per_cell is not None and view == "theme_evidence":
        source = sql.SQL(
            """(SELECT e.*, row_number() OVER (PARTITION BY theme_id, session_model
                                                ORDER BY quote_rank NULLS LAST, unit_id) AS position_in_cell
                FROM reporting.theme_evidence e WHERE study = %(study)s) ranked""")
    query = sql.SQL("SELECT * FROM {} WHERE study = %(study)s{} ORDER BY {}").format(
        source, sql.SQL(" AND position_in_cell <= %(per_cell)s" if per_cell is not None and view == "theme_evidence"
                        else ""), sql.SQL(STUDY_VIEWS[view]))
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, {"study": study, "per_cell": per_cell}).fetchall()
    for row in rows:
        row.pop("position_in_cell", None)
    return rows


def read_study(conn: psycopg.Connection, study: str, evidence_per_cell: int | None = None
               ) -> dict[str, list[dict[str, Any]] | None]:
    """Every per-study reporting view's rows for a study; None for a view this database lacks."""
    present = existing_views(conn, list(STUDY_VIEWS))
    return {view: (read_view(conn, view, study, evidence_per_cell) if view in present else None)
            for view in STUDY_VIEWS}


def read_report_data(conn: psycopg.Connection, study: str, evidence_per_cell: int | None = None) -> ReportData:
    """A study's rows of every reporting view (theme_evidence cut to `evidence_per_cell` rows per cell)."""
    return ReportData(study=study, tables=read_study(conn, study, evidence_per_cell),
                      min_interviews_per_cell=min_interviews_per_cell(conn),
                      generated_at=conn.execute("SELECT now()").fetchone()[0])
