"""The reporting views are a contract: the migrated database, schemas/contract.json and the
reference in schemas/views.md agree on every view, column, type and meaning."""

from __future__ import annotations

import json

from miner.contract import (CONTRACT_PATH, VIEWS_MD_PATH, contract_differences, read_contract,
                            render_reference, with_reference)


def test_views_match_the_written_contract(conn):
    problems = contract_differences(json.loads(CONTRACT_PATH.read_text()), read_contract(conn))
    assert not problems, ("reporting views and schemas/contract.json disagree; after an intended change run "
                          "`python -m miner.contract --write`:\n" + "\n".join(problems))


def test_reference_page_is_rendered_from_the_contract():
    text = VIEWS_MD_PATH.read_text()
    assert with_reference(text, render_reference(json.loads(CONTRACT_PATH.read_text()))) == text


def test_every_view_and_column_has_a_meaning(conn):
    for view, spec in read_contract(conn)["views"].items():
        assert spec["description"], view
        assert all(c["description"] for c in spec["columns"]), view


def test_contract_covers_the_issue_views(conn):
    views = read_contract(conn)["views"]
    for name in ("theme_by_model", "model_ratings", "theme_evidence", "job_history", "theme_history",
                 "theme_lineage", "quality_exclusions", "llm_cost", "theme_model_pairs", "privacy"):
        assert name in views


def test_reporting_theme_by_model_keeps_the_public_view_columns(conn):
    public = [c.name for c in conn.execute("SELECT * FROM public.theme_by_model LIMIT 0").description]
    reporting = [c["name"] for c in read_contract(conn)["views"]["theme_by_model"]["columns"]]
    assert reporting[:len(public)] == public


def test_a_changed_column_is_reported():
    contract = json.loads(CONTRACT_PATH.read_text())
    changed = json.loads(json.dumps(contract))
    changed["views"]["theme_by_model"]["columns"][6]["type"] = "numeric"
    changed["views"]["theme_by_model"]["columns"].pop()
    problems = contract_differences(contract, changed)
    assert len(problems) == 1 and "theme_by_model" in problems[0]
