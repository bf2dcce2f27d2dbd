"""`miner export`: a study's reporting views as csv, parquet or json, one file per view with the
contract's columns, plus a manifest; pandas reads every file back."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from miner import repository_reporting
from miner.cli import app
from reporting_study import STUDY, analysed_study

READERS = {"csv": pd.read_csv, "parquet": pd.read_parquet, "json": lambda p: pd.read_json(p, orient="records")}


@pytest.fixture(scope="module")
def exported(database_url, settings, embedder, miner_env, tmp_path_factory):
    analysed_study(database_url, settings, embedder)
    out = {}
    for fmt in READERS:
        folder = tmp_path_factory.mktemp(f"export-{fmt}")
        result = CliRunner().invoke(app, ["export", "--study", STUDY, "--format", fmt, "--out", str(folder)],
                                    env=miner_env)
        assert result.exit_code == 0, result.output
        out[fmt] = folder
    return out


@pytest.mark.parametrize("fmt", list(READERS))
def test_every_view_is_exported_with_the_contract_columns(exported, conn, fmt):
    contract = repository_reporting.view_contract(conn)
    manifest = json.loads((exported[fmt] / "manifest.json").read_text())
    assert manifest["study"] == STUDY and manifest["min_interviews_per_cell"] == 5
    assert set(manifest["views"]) == set(repository_reporting.STUDY_VIEWS)
    for view, entry in manifest["views"].items():
        rows = repository_reporting.read_view(conn, view, STUDY)
        assert entry["rows"] == len(rows)
        frame = READERS[fmt](exported[fmt] / entry["file"])
        assert len(frame) == len(rows), view
        if rows or fmt != "json":  # an empty JSON array carries no column names
            assert list(frame.columns) == [c["name"] for c in contract[view]["columns"]], view


def test_every_per_study_reporting_view_is_exported(conn):
    per_study = {r[0] for r in conn.execute(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'reporting' AND column_name = 'study'")}
    assert per_study and per_study == set(repository_reporting.STUDY_VIEWS)


def test_suppressed_cells_export_as_suppressed_with_empty_numbers(exported, conn):
    frame = pd.read_csv(exported["csv"] / "theme_by_model.csv")
    suppressed = frame[frame["suppressed"]]
    assert len(suppressed) == sum(r["suppressed"] for r in repository_reporting.read_view(conn, "theme_by_model", STUDY))
    assert suppressed[["answers", "interviews", "share"]].isna().all().all()


def test_parquet_keeps_types_and_lists(exported):
    frame = pd.read_parquet(exported["parquet"] / "theme_by_model.parquet")
    assert frame["suppressed"].dtype == bool
    assert isinstance(frame["keywords"].dropna().iloc[0].tolist(), list)
    assert pd.api.types.is_float_dtype(frame["share"])


def test_csv_writes_arrays_as_json_text(exported):
    keywords = pd.read_csv(exported["csv"] / "themes.csv")["keywords"].dropna()
    assert isinstance(json.loads(keywords.iloc[0]), list)


def test_unknown_format_or_study_fails_clearly(miner_env, tmp_path):
    bad_format = CliRunner().invoke(app, ["export", "--study", STUDY, "--format", "xlsx", "--out", str(tmp_path)],
                                    env=miner_env)
    assert bad_format.exit_code == 2 and "csv, parquet, json" in bad_format.output
    no_study = CliRunner().invoke(app, ["export", "--study", "no-such-study", "--out", str(tmp_path)], env=miner_env)
    assert no_study.exit_code == 2 and "no published job" in no_study.output


FORMULAS = ['=HYPERLINK("http://evil","x")', "=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1:A9)", "\tx", "\r=1"]


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_neutralised(tmp_path):
    from datetime import datetime, timezone

    from miner.export import export_study
    from miner.records import ReportData

    rows = [{"theme_id": -1, "share": -0.25, "answer": text, "label": "plain"} for text in FORMULAS]
    data = ReportData(study="=study", tables={"theme_evidence": rows}, min_interviews_per_cell=5,
                      generated_at=datetime.now(timezone.utc))
    export_study(data, "csv", tmp_path, {})
    with (tmp_path / "theme_evidence.csv").open(newline="", encoding="utf-8") as handle:
        cells = list(csv.reader(handle))[1:]
    assert [row[2] for row in cells] == ["'" + text for text in FORMULAS]
    assert all(row[3] == "plain" for row in cells)
    frame = pd.read_csv(tmp_path / "theme_evidence.csv")  # numbers stay numbers, minus signs included
    assert frame["theme_id"].tolist() == [-1] * len(FORMULAS) and frame["share"].tolist() == [-0.25] * len(FORMULAS)


@pytest.mark.parametrize("fmt", list(READERS))
def test_the_theme_tree_exports_whole_in_every_format(exported, conn, fmt):
    tree = READERS[fmt](exported[fmt] / f"theme_tree.{fmt}")
    cells = READERS[fmt](exported[fmt] / f"theme_tree_by_model.{fmt}")
    assert len(tree) == len(repository_reporting.read_view(conn, "theme_tree", STUDY)) > 0
    assert set(tree["parent_id"].dropna()) <= set(tree["node_id"])  # every parent is in the file
    assert set(cells["node_id"]) == set(tree["node_id"])
    assert set(tree.loc[tree["kind"] == "theme", "theme_id"].astype(int)) == \
        set(READERS[fmt](exported[fmt] / f"themes.{fmt}")["theme_id"])
