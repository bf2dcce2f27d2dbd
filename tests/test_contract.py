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


def sources(conn, view: str) -> set[str]:
    """The relations a view reads."""
    return {row[0] for row in conn.execute(
        """SELECT DISTINCT d.refobjid::regclass::text FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid
           WHERE w.ev_class = %s::regclass AND d.refobjid <> w.ev_class AND d.classid = 'pg_rewrite'::regclass
             AND d.refclassid = 'pg_class'::regclass""", (view,))}


def test_a_name_in_public_and_reporting_is_the_reporting_view(conn):
    """One name, one meaning: public.X of a reporting view X reads reporting.X, column for column."""
    shared = [name for (name,) in conn.execute(
        """SELECT p.relname FROM pg_class p JOIN pg_class r USING (relname)
           WHERE p.relnamespace = 'public'::regnamespace AND r.relnamespace = 'reporting'::regnamespace
             AND p.relkind = 'v'""")]
    assert "theme_by_model" in shared and len(shared) >= 9
    for name in shared:
        public = conn.execute(f"SELECT * FROM public.{name} LIMIT 0").description
        reporting = conn.execute(f"SELECT * FROM reporting.{name} LIMIT 0").description
        assert [(c.name, c.type_code) for c in public] == [(c.name, c.type_code) for c in reporting], name
        # One reads the other and nothing else (llm_cost: reporting's reads public's).
        assert sources(conn, f"public.{name}") == {f"reporting.{name}"} \
            or sources(conn, f"reporting.{name}") == {name}, name


def test_a_changed_column_is_reported():
    contract = json.loads(CONTRACT_PATH.read_text())
    changed = json.loads(json.dumps(contract))
    changed["views"]["theme_by_model"]["columns"][6]["type"] = "numeric"
    changed["views"]["theme_by_model"]["columns"].pop()
    problems = contract_differences(contract, changed)
    assert len(problems) == 1 and "theme_by_model" in problems[0]
