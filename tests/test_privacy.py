"""Privacy holes closed (issues 11.5, 11.6, 13.3): K changes only by `miner db set-threshold` and
read-only commands never migrate; a view name shows the owner and the reader the same rows; and
as the reader role, no subtraction of the reporting views' totals recovers a suppressed count."""

from __future__ import annotations

import shutil
from collections import defaultdict

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from conftest import RUN_TAG
from miner import db, repository_jobs, repository_reporting
from miner.cli import app
from reporting_study import STUDY, analysed_study

ROLE = f"miner_attacker_{RUN_TAG}".lower()
runner = CliRunner()


@pytest.fixture(scope="module")
def published(database_url, settings, embedder) -> str:
    return analysed_study(database_url, settings, embedder)[-1]


@pytest.fixture(scope="module")
def reader(database_url, published, miner_env):
    result = runner.invoke(app, ["db", "grant-reader", ROLE], env=miner_env)
    assert result.exit_code == 0, result.output
    yield psycopg.conninfo.make_conninfo(database_url, user=ROLE)
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(ROLE)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(ROLE)))


@pytest.fixture
def threshold(database_url):
    """Set K through the command (committed, as the views read it); back to 5 afterwards."""
    def set_k(k: int) -> None:
        with psycopg.connect(database_url) as admin:
            repository_reporting.set_min_interviews_per_cell(admin, k)

    yield set_k
    set_k(5)


def k_now(database_url) -> int:
    with psycopg.connect(database_url) as c:
        return c.execute("SELECT min_interviews_per_cell FROM reporting.privacy").fetchone()[0]


def read_only_commands(job_id: str, tmp_path) -> list[list[str]]:
    commands = [["jobs"], ["jobs", "--study", STUDY], ["jobs", "show", job_id], ["schedule"], ["db", "url"],
                ["db", "status"], ["report", "--study", STUDY, "--out", str(tmp_path / "r.html")],
                ["export", "--study", STUDY, "--format", "json", "--out", str(tmp_path / "x")],
                ["llm", "cache", "list"]]
    if shutil.which("psql"):
        commands.append(["db", "psql", "-c", "SELECT 1"])
    return commands


# -- K: an operator's act -----------------------------------------------------------------------------

def test_set_threshold_is_the_only_writer_of_k(database_url, published, miner_env, tmp_path, threshold):
    result = runner.invoke(app, ["db", "set-threshold", "9"], env={**miner_env, "MINER_MIN_INTERVIEWS_PER_CELL": "3"})
    assert result.exit_code == 0 and "K = 9 (was 5)" in result.output, result.output
    lower = {**miner_env, "MINER_MIN_INTERVIEWS_PER_CELL": "2"}
    for command in read_only_commands(published, tmp_path):
        result = runner.invoke(app, command, env=lower)
        assert result.exit_code == 0, (command, result.output)
        assert k_now(database_url) == 9, command
    for command in (["db", "migrate"], ["db", "grant-reader", f"{ROLE}_k"]):  # writing commands leave K too
        assert runner.invoke(app, command, env=lower).exit_code == 0
        assert k_now(database_url) == 9, command
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP OWNED BY {0}; DROP ROLE {0}").format(sql.Identifier(f"{ROLE}_k")))
        who = admin.execute("SELECT updated_by FROM reporting.privacy").fetchone()[0]
    assert who == psycopg.conninfo.conninfo_to_dict(database_url).get("user", who)
    assert runner.invoke(app, ["db", "set-threshold", "0"], env=miner_env).exit_code != 0


def test_each_published_job_records_its_k(conn, published, threshold):
    recorded = conn.execute("SELECT min_interviews_per_cell FROM reporting.studies WHERE study = %s",
                            (STUDY,)).fetchone()[0]
    assert recorded == 5  # the K in force when the sample study's last job was published
    threshold(8)
    conn.rollback()
    assert conn.execute("SELECT min_interviews_per_cell FROM reporting.job_history WHERE job_id = %s",
                        (published,)).fetchone()[0] == 5  # later changes don't rewrite history
    assert conn.execute("SELECT studies_published_under_other_k FROM reporting.privacy").fetchone()[0] >= 1


def test_read_only_commands_never_migrate(database_url, published, miner_env, tmp_path):
    """A database one migration behind: read-only commands say so and leave it as it is."""
    name = f"miner_behind_{RUN_TAG}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(database_url, dbname=name)
    try:
        with psycopg.connect(url) as behind:
            db.migrate(behind)
            last = db.migration_files()[-1].name
            behind.execute("DELETE FROM schema_migrations WHERE name = %s", (last,))
        env = {**miner_env, "MINER_DATABASE_URL": url, "MINER_MIN_INTERVIEWS_PER_CELL": "2"}
        for command in read_only_commands(published, tmp_path):
            result = runner.invoke(app, command, env=env)
            if command[:2] in (["db", "url"], ["db", "psql"]):
                assert result.exit_code == 0, result.output
            elif command[:2] == ["db", "status"]:
                assert last in result.output
            else:
                assert result.exit_code == 2 and "miner db migrate" in result.output, (command, result.output)
            with psycopg.connect(url) as behind:
                assert [p.name for p in db.pending_migrations(behind)] == [last], command
                assert behind.execute("SELECT min_interviews_per_cell FROM reporting_settings").fetchone()[0] == 5
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_a_new_database_starts_with_the_configured_k(database_url, miner_env):
    name = f"miner_fresh_{RUN_TAG}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(database_url, dbname=name)
    try:
        env = {**miner_env, "MINER_DATABASE_URL": url, "MINER_MIN_INTERVIEWS_PER_CELL": "12"}
        assert runner.invoke(app, ["db", "migrate"], env=env).exit_code == 0
        assert runner.invoke(app, ["db", "migrate"], env={**env, "MINER_MIN_INTERVIEWS_PER_CELL": "3"}).exit_code == 0
        with psycopg.connect(url) as fresh:
            assert fresh.execute("SELECT min_interviews_per_cell FROM reporting.privacy").fetchone()[0] == 12
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# -- one name, one meaning ----------------------------------------------------------------------------

def test_owner_and_reader_see_the_same_rows_under_one_name(conn, reader, threshold):
    threshold(7)  # some cells suppressed: the names that used to differ would differ now
    names = repository_reporting.reporting_views(conn)
    shared = 0
    with psycopg.connect(reader, autocommit=True) as as_reader:
        for name in names:
            kind = conn.execute("SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(%s)", (name,)).fetchone()
            if kind is None or kind[0] == "r":  # not a name the owner has, or its table (`themes`)
                continue
            query = sql.SQL("SELECT * FROM {}").format(sql.Identifier(name))
            owner_rows = sorted(map(repr, conn.execute(query).fetchall()))
            reader_rows = sorted(map(repr, as_reader.execute(query).fetchall()))
            assert owner_rows == reader_rows, name
            shared += 1
    assert shared >= 10


def test_published_is_defined_once(conn, published):

    ranked = [str(j) for (j,) in conn.execute(
        "SELECT job_id FROM published_jobs WHERE study = %s ORDER BY recency", (STUDY,))]
    latest = conn.execute("SELECT job_id FROM latest_jobs WHERE study = %s", (STUDY,)).fetchone()[0]
    assert ranked[0] == str(latest) == published == repository_jobs.published_job(conn, STUDY)
    assert len(ranked) >= 2 and repository_jobs.published_job(conn, STUDY, excluding=published) == ranked[1]


# -- the subtraction attack, as the reader ------------------------------------------------------------

def cells_as_owner(conn) -> dict[tuple[int, str], dict]:
    """The true cells of the published job, with the verdict the views apply."""
    rows = conn.execute(
        """SELECT c.theme_id, c.session_model, c.answers, c.interviews, c.suppressed, c.primary_suppressed
           FROM reporting_cells c JOIN latest_jobs l USING (job_id) WHERE l.study = %s""", (STUDY,)).fetchall()
    return {(t, m): {"answers": a, "interviews": i, "suppressed": s, "primary": p} for t, m, a, i, s, p in rows}


def attack_k(conn) -> int:
    """A K that leaves some theme with exactly one cell under K (the issue's case) and keeps most cells."""
    sizes = conn.execute(
        """SELECT s.theme_id, s.interviews FROM theme_model_stats s JOIN latest_jobs l USING (job_id)
           WHERE l.study = %s AND s.interviews > 0""", (STUDY,)).fetchall()
    by_theme = defaultdict(list)
    for theme, n in sizes:
        by_theme[theme].append(n)
    for k in sorted({n + 1 for _, n in sizes}):
        if any(sum(n < k for n in ns) == 1 and len(ns) > 1 for ns in by_theme.values()):
            return k
    pytest.skip("no K leaves a theme with exactly one small cell in the sample study")


def test_no_suppressed_count_is_recovered_by_subtraction(conn, reader, threshold):
    k = attack_k(conn)
    threshold(k)
    truth = cells_as_owner(conn)
    assert any(c["primary"] for c in truth.values())
    with psycopg.connect(reader, autocommit=True) as as_reader:
        # themes.answers − Σ unsuppressed theme_by_model.answers, and the same for interviews
        theme_gaps = as_reader.execute(
            """SELECT t.theme_id, t.answers - coalesce(sum(m.answers), 0), t.interviews - coalesce(sum(m.interviews), 0)
               FROM themes t LEFT JOIN theme_by_model m ON m.study = t.study AND m.theme_id = t.theme_id
                                                       AND NOT m.suppressed
               WHERE t.study = %s AND NOT t.suppressed GROUP BY t.theme_id, t.answers, t.interviews""",
            (STUDY,)).fetchall()
        # a model's total answers (answers / share of any published cell) − Σ its published answers
        model_gaps = as_reader.execute(
            """SELECT session_model, max(answers / share) - sum(answers)
               FROM theme_by_model WHERE study = %s AND NOT suppressed AND share > 0 GROUP BY session_model""",
            (STUDY,)).fetchall()
        # the job: units − outliers − Σ published answers
        job_gap = as_reader.execute(
            """SELECT s.units - h.outliers - (SELECT sum(answers) FROM theme_by_model m
                                               WHERE m.study = s.study AND NOT m.suppressed)
               FROM studies s JOIN job_history h USING (job_id) WHERE s.study = %s""", (STUDY,)).fetchone()[0]
        rest = as_reader.execute(
            """SELECT count(*) FROM theme_by_model m WHERE study = %s AND rest_prevalence IS NOT NULL
               AND EXISTS (SELECT 1 FROM theme_by_model o WHERE o.study = m.study AND o.theme_id = m.theme_id
                           AND o.suppressed)""", (STUDY,)).fetchone()[0]
    assert theme_gaps and all(a == 0 and i == 0 for _, a, i in theme_gaps), theme_gaps
    hidden = [c for c in truth.values() if c["suppressed"]]
    # What a model's or the job's gap holds: suppressed cells (and that model's outliers). Never one cell alone.
    per_model = defaultdict(list)
    for (_, model), cell in truth.items():
        if cell["suppressed"]:
            per_model[model].append(cell)
    for model, gap in model_gaps:
        assert len(per_model[model]) != 1, (model, gap)
    assert len(hidden) != 1
    assert job_gap >= sum(c["answers"] for c in hidden)
    assert rest == 0  # one-vs-rest numbers that include a suppressed cell are withheld


def test_the_theme_tree_gives_no_suppressed_count_back(conn, reader, threshold):
    threshold(attack_k(conn))
    truth = cells_as_owner(conn)
    under = {node: themes for node, themes in conn.execute(
        "SELECT node_id, theme_ids FROM tree_nodes n JOIN latest_jobs l USING (job_id) WHERE l.study = %s",
        (STUDY,))}
    with psycopg.connect(reader, autocommit=True) as as_reader:
        # a node's total − Σ its published node × model cells; for a leaf also − reporting.themes
        node_gaps = as_reader.execute(
            """SELECT t.node_id, t.answers - coalesce(sum(m.answers), 0), t.interviews - coalesce(sum(m.interviews), 0),
                      t.answers - th.answers
               FROM theme_tree t
               LEFT JOIN theme_tree_by_model m ON m.study = t.study AND m.node_id = t.node_id AND NOT m.suppressed
               LEFT JOIN themes th ON th.study = t.study AND th.theme_id = t.theme_id
               WHERE t.study = %s AND NOT t.suppressed GROUP BY t.node_id, t.answers, t.interviews, th.answers""",
            (STUDY,)).fetchall()
        shown = as_reader.execute("SELECT node_id, session_model FROM theme_tree_by_model WHERE study = %s "
                                  "AND NOT suppressed", (STUDY,)).fetchall()
        undecided = as_reader.execute("SELECT count(*) FROM theme_tree_by_model WHERE study = %s "
                                      "AND suppressed IS NULL", (STUDY,)).fetchone()[0]
    assert undecided == 0
    assert any(c["suppressed"] for c in truth.values())
    assert node_gaps and all(a == 0 and i == 0 and leaf in (0, None) for _, a, i, leaf in node_gaps), node_gaps
    # A published node cell minus its published children would be its one suppressed theme cell.
    for node, model in shown:
        hidden = [t for t in under[node] if truth.get((t, model), {}).get("suppressed")]
        assert len(hidden) != 1, (node, model, hidden)


def test_no_opinion_total_minus_published_rows_never_isolates_one_row(conn, published):
    """job_history.counts->'no_opinion' is the job's total; with exactly one row under K the published
    rows must not add up to the rest. The no-opinion flags are re-set inside this test's transaction
    (rolled back) so that one (model, question) rests on 2 interviews and two others on K or more."""
    k = k_now(conn.info.dsn)
    groups = conn.execute(
        """SELECT u.session_model, su.question, array_agg(a.unit_id ORDER BY u.interview_id),
                  array_agg(u.interview_id ORDER BY u.interview_id)
           FROM job_answers a JOIN units u USING (unit_id) JOIN scrubbed_units su USING (unit_id)
           WHERE a.job_id = %s GROUP BY 1, 2 HAVING count(DISTINCT u.interview_id) >= %s
           ORDER BY count(*) DESC LIMIT 3""", (published, k + 2)).fetchall()
    assert len(groups) == 3
    conn.execute("UPDATE job_answers SET no_opinion = false WHERE job_id = %s", (published,))
    small = 0
    for n, (_, _, unit_ids, interview_ids) in enumerate(groups):
        keep = set(sorted(set(interview_ids))[:2]) if n == 0 else set(interview_ids)  # row 0: 2 interviews
        flagged = [u for u, i in zip(unit_ids, interview_ids) if i in keep]
        small = small or len(flagged)
        conn.execute("UPDATE job_answers SET no_opinion = true WHERE job_id = %s AND unit_id = ANY(%s)",
                     (published, flagged))
    total = conn.execute("SELECT count(*) FROM job_answers WHERE job_id = %s AND no_opinion",
                         (published,)).fetchone()[0]
    rows = conn.execute("SELECT answers, suppressed FROM reporting.no_opinion WHERE job_id = %s",
                        (published,)).fetchall()
    assert len(rows) == 3 and sum(s for _, s in rows) == 2, rows  # the small row and one to hide it with
    assert total - sum(a for a, s in rows if not s) > small


def test_complementary_cell_is_the_smallest_published_cell_of_its_model(conn, published, threshold):
    threshold(attack_k(conn))
    truth = cells_as_owner(conn)
    for model in {m for _, m in truth}:
        row = {t: c for (t, m), c in truth.items() if m == model}
        primary = [t for t, c in row.items() if c["primary"]]
        extra = [t for t, c in row.items() if c["suppressed"] and not c["primary"]]
        if len(primary) == 1:
            candidates = [c["answers"] for c in row.values() if not c["primary"] and c["answers"] > 0]
            assert len(extra) == (1 if candidates else 0)
            if extra:
                assert row[extra[0]]["answers"] == min(candidates)
        else:
            assert extra == []
