"""`miner db grant-reader NAME`: a login role that can SELECT the reporting views and nothing else.
Tested by connecting as that role: views answer, raw tables and the owner's views refuse, writes
refuse even with the session made read-write, and the issue's question is answerable in SQL."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors, sql
from typer.testing import CliRunner

from conftest import RUN_TAG
from miner import repository, repository_jobs, repository_reporting, schedule
from miner.cli import app
from reporting_study import STUDY, analysed_study

ROLE = f"miner_reader_{RUN_TAG}".lower()
RAW = ("interviews", "units", "scrubbed_units", "quarantine", "llm_cache", "llm_calls", "ratings", "jobs",
       "theme_quotes", "reporting_settings", "schema_migrations",
       # the owner's views over raw text and unsuppressed counts (public.theme_by_model: revoked by schema)
       "public.theme_answers", "public.theme_summary", "public.theme_by_model", "answer_dimensions",
       "interview_ratings", "reporting_cells")
DENIED = (errors.InsufficientPrivilege, errors.ReadOnlySqlTransaction)


@pytest.fixture(scope="module")
def reader(database_url, settings, embedder, miner_env):
    """Connection settings of the reader role (created through the CLI); dropped afterwards."""
    analysed_study(database_url, settings, embedder)
    result = CliRunner().invoke(app, ["db", "grant-reader", ROLE], env=miner_env)
    assert result.exit_code == 0, result.output
    yield psycopg.conninfo.make_conninfo(database_url, user=ROLE)
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(ROLE)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(ROLE)))


def test_reader_selects_every_reporting_view(reader, conn):
    views = repository_reporting.reporting_views(conn)
    assert len(views) >= 15
    with psycopg.connect(reader, autocommit=True) as as_reader:
        for view in views:
            as_reader.execute(sql.SQL("SELECT * FROM reporting.{} LIMIT 3").format(sql.Identifier(view))).fetchall()
        # Unqualified names find the reporting views: the reader's theme_by_model has suppression.
        columns = [c.name for c in as_reader.execute("SELECT * FROM theme_by_model LIMIT 0").description]
        assert "suppressed" in columns


def test_reader_cannot_read_raw_tables_or_owner_views(reader):
    with psycopg.connect(reader, autocommit=True) as as_reader:
        for name in RAW:
            with pytest.raises(errors.InsufficientPrivilege):
                as_reader.execute(f"SELECT * FROM {name} LIMIT 1")


def test_reader_cannot_see_raw_text_through_planner_statistics(reader, database_url):
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("ANALYZE units")
        assert admin.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'units'").fetchone()[0] > 0
    with psycopg.connect(reader, autocommit=True) as as_reader:
        assert as_reader.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'units'").fetchone()[0] == 0


@pytest.mark.parametrize("statement", [
    "INSERT INTO jobs (job_id, study) VALUES (gen_random_uuid(), 'x')",
    "UPDATE interviews SET study = 'x'",
    "DELETE FROM units",
    "UPDATE reporting_settings SET min_interviews_per_cell = 1",
    "DELETE FROM reporting.job_history",  # a one-table view: updatable, were it not for privileges
    "UPDATE reporting.privacy SET min_interviews_per_cell = 1",
    "CREATE TABLE public.sneaky (x int)",
    "CREATE TABLE reporting.sneaky (x int)",
    "CREATE VIEW reporting.sneaky AS SELECT 1 AS x",
])
def test_reader_cannot_write(reader, statement):
    with psycopg.connect(reader, autocommit=True) as as_reader:
        with pytest.raises(DENIED):  # the session starts read-only ...
            as_reader.execute(statement)
        as_reader.execute("SET default_transaction_read_only = off")
        with pytest.raises(errors.InsufficientPrivilege):  # ... and privileges hold without that
            as_reader.execute(statement)


def test_reader_answers_which_themes_separate_two_models_and_shows_quotes(reader, conn):
    models = conn.execute("SELECT session_models FROM reporting.studies WHERE study = %s", (STUDY,)).fetchone()[0]
    with psycopg.connect(reader, autocommit=True) as as_reader:
        separating = []
        for a in models:
            for b in models:
                separating += as_reader.execute(
                    """SELECT theme_id, label, model_a, model_b, difference, difference_ci_low, difference_ci_high
                       FROM theme_model_pairs
                       WHERE study = %s AND model_a = %s AND model_b = %s AND NOT suppressed
                         AND (difference_ci_low > 0 OR difference_ci_high < 0)
                       ORDER BY abs(difference) DESC""", (STUDY, a, b)).fetchall()
        assert separating, "the sample's planted differences should separate some pair of models"
        theme_id, label, model_a, _, difference, low, high = separating[0]
        assert label and low <= difference <= high and (low > 0 or high < 0)
        quotes = as_reader.execute(
            """SELECT answer, interview_id FROM theme_evidence
               WHERE study = %s AND theme_id = %s AND session_model = %s AND NOT suppressed
               ORDER BY quote_rank NULLS LAST, unit_id LIMIT 3""", (STUDY, theme_id, model_a)).fetchall()
        assert len(quotes) == 3 and all(answer and interview for answer, interview in quotes)


def test_views_added_by_a_later_migration_are_readable_without_granting_again(reader, database_url):
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("CREATE VIEW reporting.added_later AS SELECT 1 AS x")
    try:
        with psycopg.connect(reader, autocommit=True) as as_reader:
            assert as_reader.execute("SELECT x FROM reporting.added_later").fetchone() == (1,)
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("DROP VIEW reporting.added_later")


@pytest.mark.parametrize("name", ["postgres", "Robert'); DROP TABLE units; --", "UpperCase"])
def test_grant_reader_refuses_admin_roles_and_odd_names(conn, name):
    with pytest.raises(repository_reporting.RoleNameError):
        repository_reporting.grant_reader(conn, name)


def test_views_show_the_scrubbed_copy_never_the_raw_text(conn, settings, embedder, reader):
    from miner import jobs
    from miner.components import Components
    from miner.ingest import to_interview
    from miner.sample import generate_sample

    record = generate_sample(1, seed=5)[0].record
    first_answer = next(m for m in record["interview"] if m["role"] == "user")
    first_answer["content"] = "Mail me at jane.doe@example.com or call +44 20 7946 0958, it was fine."
    interview = to_interview(record, "scrub-check", "scrub.jsonl", 1)
    repository.save_interviews(conn, [interview])
    job_id = repository_jobs.create_job(conn, "scrub-check")
    conn.commit()
    jobs.run_step(conn, job_id, "units", Components.from_settings(settings, embedder=embedder))
    schedule.cancel_job(conn, job_id)  # only its first step was needed; leave no job running
    answer = conn.execute("SELECT answer FROM scrubbed_units WHERE unit_id = %s", (f"{interview.interview_id}:0",)).fetchone()[0]
    assert "[email]" in answer and "[phone]" in answer and "jane.doe" not in answer and "7946" not in answer

    # The evidence view reads that copy: replace it and the view follows; remove it and the text is NULL.
    unit_id = conn.execute("SELECT unit_id FROM reporting.theme_evidence WHERE study = %s AND NOT suppressed LIMIT 1",
                           (STUDY,)).fetchone()[0]
    conn.execute("UPDATE scrubbed_units SET answer = 'the scrubbed copy' WHERE unit_id = %s", (unit_id,))
    assert conn.execute("SELECT answer FROM reporting.theme_evidence WHERE unit_id = %s", (unit_id,)).fetchone()[0] \
        == "the scrubbed copy"
    conn.execute("DELETE FROM scrubbed_units WHERE unit_id = %s", (unit_id,))
    assert conn.execute("SELECT answer FROM reporting.theme_evidence WHERE unit_id = %s", (unit_id,)).fetchone()[0] is None
    conn.rollback()


# -- hardening (issue 13.4): an existing role, other databases, timeouts, temp objects ---------------

@pytest.fixture
def existing_role(database_url):
    """A role that could read everything: member of pg_read_all_data, with its own grants, CONNECT on
    another database. Dropped (with that database) afterwards."""
    name, other = f"miner_old_{RUN_TAG}".lower(), f"miner_other_{RUN_TAG}".lower()
    ident = sql.Identifier(name)
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
        admin.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(ident))
        admin.execute(sql.SQL("GRANT SELECT ON interviews TO {}").format(ident))
        admin.execute(sql.SQL("GRANT TEMPORARY ON DATABASE {} TO {}").format(
            sql.Identifier(admin.info.dbname), ident))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(other)))
        admin.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(other), ident))
    yield name, other
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(other)))
        admin.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        admin.execute(sql.SQL("DROP ROLE {}").format(ident))


def test_grant_reader_on_an_existing_role_takes_away_what_it_had(existing_role, database_url, miner_env):
    name, other = existing_role
    as_role = psycopg.conninfo.make_conninfo(database_url, user=name)
    with psycopg.connect(as_role, autocommit=True) as before:
        assert before.execute("SELECT count(*) FROM interviews").fetchone()[0] >= 0  # it could, before
    result = CliRunner().invoke(app, ["db", "grant-reader", name, "--statement-timeout", "1s"], env=miner_env)
    assert result.exit_code == 0, result.output
    assert "pg_read_all_data" in result.output  # the membership it lost
    assert other in result.output  # PUBLIC's CONNECT there still admits it: said, with what to do
    with psycopg.connect(as_role, autocommit=True) as after:
        assert after.execute("SELECT count(*) FROM reporting.themes").fetchone()[0] >= 0
        for table in ("interviews", "units", "public.theme_answers"):
            with pytest.raises(errors.InsufficientPrivilege):
                after.execute(f"SELECT * FROM {table} LIMIT 1")
        with pytest.raises(errors.InsufficientPrivilege):
            after.execute("SET ROLE pg_read_all_data")
        assert after.execute("SELECT pg_has_role(current_user, 'pg_read_all_data', 'MEMBER')").fetchone()[0] is False
    # The grant of CONNECT it had on the other database is gone: closing PUBLIC's door locks it out.
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier(other)))
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(psycopg.conninfo.make_conninfo(database_url, user=name, dbname=other)).close()


def test_reader_cannot_create_temp_objects_even_read_write(reader):
    with psycopg.connect(reader) as as_reader:
        as_reader.execute("BEGIN READ WRITE")
        with pytest.raises(errors.InsufficientPrivilege):
            as_reader.execute("CREATE TEMP TABLE sneaky (x int)")
        as_reader.rollback()
        as_reader.execute("BEGIN READ WRITE")
        with pytest.raises(errors.InsufficientPrivilege):
            as_reader.execute("CREATE TEMP VIEW sneaky AS SELECT 1 AS x")
        as_reader.rollback()


def test_reader_sessions_have_a_statement_timeout(reader, existing_role, database_url, miner_env):
    with psycopg.connect(reader, autocommit=True) as as_reader:
        assert as_reader.execute("SHOW statement_timeout").fetchone()[0] == repository_reporting.DEFAULT_READER_TIMEOUT
        assert as_reader.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
    name, _ = existing_role
    assert CliRunner().invoke(app, ["db", "grant-reader", name, "--statement-timeout", "1s"], env=miner_env).exit_code == 0
    with psycopg.connect(psycopg.conninfo.make_conninfo(database_url, user=name), autocommit=True) as short:
        assert short.execute("SHOW statement_timeout").fetchone()[0] == "1s"
        with pytest.raises(errors.QueryCanceled):
            short.execute("SELECT pg_sleep(5)")
    result = CliRunner().invoke(app, ["db", "grant-reader", name, "--statement-timeout", "1; DROP TABLE units"],
                                env=miner_env)
    assert result.exit_code == 2
