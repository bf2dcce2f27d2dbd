"""The privacy threshold: a theme × model cell backed by fewer than K distinct interviews shows as
suppressed in the reporting views (its row kept, numbers NULL, no text), K is set by
`miner db set-threshold` (MINER_MIN_INTERVIEWS_PER_CELL is only a new database's first K), and the
report shows suppressed cells as suppressed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from miner import repository_reporting
from miner.cli import app
from miner.report import render_report
from miner.settings import Settings
from reporting_study import STUDY, analysed_study

NUMBERS = ("answers", "interviews", "share", "prevalence", "ci_low", "ci_high", "rest_prevalence", "difference",
           "p_value", "p_adjusted", "significant")


@pytest.fixture(scope="module")
def published(database_url, settings, embedder) -> str:
    return analysed_study(database_url, settings, embedder)[-1]


@pytest.fixture
def threshold(conn):
    """Set K for one test (committed, as the views read it); back to the default afterwards."""
    def set_k(k: int) -> None:
        repository_reporting.set_min_interviews_per_cell(conn, k)
        conn.commit()

    yield set_k
    conn.rollback()
    set_k(Settings.model_fields["min_interviews_per_cell"].default)


def raw_cells(conn, job_id: str) -> dict[tuple[int, str], tuple[int, int | None]]:
    """(theme, model) → (distinct interviews behind the answers, interviews in the prevalence test)."""
    rows = conn.execute(
        """SELECT s.theme_id, s.session_model, s.interviews, p.interviews_with
           FROM theme_model_stats s LEFT JOIN prevalence_stats p USING (job_id, theme_id, session_model)
           WHERE s.job_id = %s""", (job_id,)).fetchall()
    return {(t, m): (n, w) for t, m, n, w in rows}


def test_default_threshold_is_five(conn, published):
    assert Settings().min_interviews_per_cell == 5
    assert conn.execute("SELECT min_interviews_per_cell FROM reporting.privacy").fetchone()[0] == 5


def test_cells_under_k_are_suppressed_not_dropped(conn, published, threshold):
    cells = raw_cells(conn, published)
    sizes = sorted(n for n, _ in cells.values() if n > 0)
    k = sizes[len(sizes) // 3]  # a K that suppresses some cells and keeps most
    threshold(k)
    rows = repository_reporting.read_view(conn, "theme_by_model", STUDY)
    assert {(r["theme_id"], r["session_model"]) for r in rows} == set(cells)  # every cell still has its row
    suppressed = complementary = 0
    for row in rows:
        interviews, with_theme = cells[(row["theme_id"], row["session_model"])]
        under_k = 1 <= interviews < k or (with_theme is not None and 1 <= with_theme < k)
        if under_k:
            assert row["suppressed"], row
        if row["suppressed"]:
            suppressed += 1
            complementary += not under_k  # hidden with its model's one small cell (tests/test_privacy.py)
            assert all(row[c] is None for c in NUMBERS), row
        else:
            assert row["interviews"] == interviews and row["share"] is not None
    assert 0 < suppressed < len(rows)
    assert complementary <= len({r["session_model"] for r in rows})  # at most one per model


def test_a_suppressed_cell_shows_no_answer_sentence_or_count(conn, published, threshold):
    threshold(max(n for n, _ in raw_cells(conn, published).values()))  # all but the largest cells
    evidence = repository_reporting.read_view(conn, "theme_evidence", STUDY)
    by_cell: dict[tuple[int, str], list[dict]] = {}
    for row in evidence:
        by_cell.setdefault((row["theme_id"], row["session_model"]), []).append(row)
    cells = {(r["theme_id"], r["session_model"]): r for r in repository_reporting.read_view(conn, "theme_by_model", STUDY)}
    hidden = [key for key, cell in cells.items() if cell["suppressed"]]
    assert hidden
    for key in hidden:
        (row,) = by_cell[key]  # one flagged row stands for the cell: no per-answer rows, no count to read off
        assert row["suppressed"] and row["answer"] is None and row["interview_id"] is None and row["unit_id"] is None
    for view in ("theme_model_sentences", "theme_sentiment"):
        for row in repository_reporting.read_view(conn, view, STUDY):
            if cells[(row["theme_id"], row["session_model"])]["suppressed"]:
                assert row["suppressed"]
                assert (row.get("sentence"), row.get("answers"), row.get("mean_sentiment")) == (None, None, None)


def test_a_theme_under_k_loses_its_label_and_ratings_under_k_their_mean(conn, published, threshold):
    threshold(10**6)
    themes = repository_reporting.read_view(conn, "themes", STUDY)
    assert themes and all(t["suppressed"] and t["label"] is None and t["keywords"] is None for t in themes)
    cells = repository_reporting.read_view(conn, "theme_by_model", STUDY)
    assert all(c["suppressed"] or c["interviews"] == 0 for c in cells)
    ratings = repository_reporting.read_view(conn, "model_ratings", STUDY)
    assert ratings and all(r["suppressed"] and r["mean"] is None for r in ratings)
    assert all(r["answer"] is None for r in repository_reporting.read_view(conn, "theme_evidence", STUDY))


def test_threshold_of_one_suppresses_nothing(conn, published, threshold):
    threshold(1)
    assert not any(r["suppressed"] for r in repository_reporting.read_view(conn, "theme_by_model", STUDY))


def test_threshold_is_not_taken_from_a_command_environment(conn, published, miner_env):
    """K changes by `miner db set-threshold` only (tests/test_privacy.py runs every read-only command)."""
    result = CliRunner().invoke(app, ["jobs", "--study", STUDY], env={**miner_env, "MINER_MIN_INTERVIEWS_PER_CELL": "7"})
    assert result.exit_code == 0, result.output
    assert conn.execute("SELECT min_interviews_per_cell FROM reporting.privacy").fetchone()[0] == 5


def test_report_shows_suppressed_cells_as_suppressed(conn, published, threshold):
    threshold(max(n for n, _ in raw_cells(conn, published).values()))
    data = repository_reporting.read_report_data(conn, STUDY)
    hidden = sum(c["suppressed"] for c in data.tables["theme_by_model"])
    html = render_report(data)
    assert hidden and html.count("\\u003ci\\u003esuppressed\\u003c") == hidden  # heatmap cells, labelled
    assert "suppressed: fewer than" in html  # theme card rows
