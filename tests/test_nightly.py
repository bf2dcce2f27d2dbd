"""Nightly aggregation keeps theme ids: same data → same ids; 10% new interviews keep ≥95% of
answers in the same theme; a new opinion seen only in the new interviews is born as a theme."""

from __future__ import annotations

from collections import Counter

import psycopg
import pytest

from conftest import CountingEmbedder, check_answers_take_their_units_mean
from miner import repository, repository_jobs
from miner import repository_runs as runs
from miner.components import Components
from miner.ingest import to_interview
from miner.pipeline import run_job
from miner.sample import generate_sample
from miner.schedule import create_nightly_jobs

STUDY = "nightly"
NEW_OPINION = {"wants_voice_mode": [
    "I really wish I could just talk to it out loud with my voice instead of typing",
    "a voice mode so I can speak my questions aloud would be amazing",
    "please add speech input, typing everything out is tiring, I want to talk to it",
    "it needs a voice feature where I can say my request out loud",
    "I'd love to have spoken conversations with it, like a voice assistant",
]}


def ingest(conn, samples, offset=0):
    repository.save_interviews(conn, [to_interview(s.record, STUDY, "nightly.jsonl", offset + n)
                                      for n, s in enumerate(samples, start=1)])
    conn.commit()


def nightly_job(conn, components, force=False) -> str:
    created = dict(create_nightly_jobs(conn, force=force))
    assert STUDY in created
    run_job(conn, created[STUDY], components)
    return created[STUDY]


@pytest.fixture(scope="module")
def runs_over_time(database_url, settings, embedder):
    """Nightly run on 300 interviews, again on the same data, then after 10% new interviews."""
    counting = CountingEmbedder(embedder)
    components = Components.from_settings(settings, embedder=counting)
    old = generate_sample(300, seed=21)
    new = generate_sample(30, seed=22, extra_themes=NEW_OPINION)
    with psycopg.connect(database_url) as conn:
        ingest(conn, old)
        first = nightly_job(conn, components)
        nothing_new = create_nightly_jobs(conn)
        second = nightly_job(conn, components, force=True)
        ingest(conn, new, offset=len(old))
        before = row_versions(conn)
        embedded_before = len(counting.texts)
        third = nightly_job(conn, components)
        after = row_versions(conn)
    return {"first": first, "second": second, "third": third, "nothing_new": nothing_new, "new": new,
            "versions": (before, after), "embedded_tonight": counting.texts[embedded_before:]}


# Rows shared by all jobs, by key; a row's xmin changes whenever it is written (insert or update).
SHARED_ROWS = {"units": "unit_id", "scrubbed_units": "unit_id", "embeddings": "answer_hash || '/' || model"}


def row_versions(conn) -> dict[str, dict[str, str]]:
    versions = {table: dict(conn.execute(f"SELECT {key}, xmin::text FROM {table}").fetchall())
                for table, key in SHARED_ROWS.items()}
    conn.commit()
    return versions


def assignments(database_url, job_id):
    with psycopg.connect(database_url) as conn:
        return runs.load_assignments(conn, job_id)


def test_no_new_interviews_means_no_nightly_job(runs_over_time):
    assert runs_over_time["nothing_new"] == []


def test_two_nightly_runs_over_the_same_data_give_identical_theme_ids(database_url, runs_over_time):
    first = assignments(database_url, runs_over_time["first"])
    second = assignments(database_url, runs_over_time["second"])
    assert first == second
    with psycopg.connect(database_url) as conn:
        themes = lambda job: conn.execute("SELECT theme_id, label FROM themes WHERE job_id = %s ORDER BY 1", (job,)).fetchall()
        assert themes(runs_over_time["first"]) == themes(runs_over_time["second"])


def test_new_interviews_keep_existing_answers_in_their_themes(database_url, runs_over_time):
    before = assignments(database_url, runs_over_time["second"])
    after = assignments(database_url, runs_over_time["third"])
    kept = sum(1 for unit, theme in before.items() if theme is not None and after.get(unit) == theme)
    assert kept / sum(1 for t in before.values() if t is not None) >= 0.95


def test_planted_new_opinion_is_born_as_a_new_theme(database_url, runs_over_time):
    third = runs_over_time["third"]
    after = assignments(database_url, third)
    with psycopg.connect(database_url) as conn:
        born = {r[0] for r in conn.execute("SELECT theme_id FROM theme_lineage WHERE job_id = %s AND event = 'born'", (third,))}
        old_ids = {r[0] for r in conn.execute("SELECT theme_id FROM themes WHERE job_id = %s", (runs_over_time["second"],))}
        counts = repository_jobs.get_job(conn, third).counts
    planted_answers = {f"{to_interview(s.record, STUDY, 'x', 0).interview_id}:{i}"
                       for s in runs_over_time["new"] for i, t in enumerate(s.answer_themes) if t == "wants_voice_mode"}
    # The job themes opinion units (`<interview>:<answer>:<k>`), spans of those answers.
    planted_units = [u for u in after if u.rsplit(":", 1)[0] in planted_answers]
    assert len(planted_answers) >= 8 and len(planted_units) >= len(planted_answers)
    homes = Counter(after.get(u) for u in planted_units)
    home, count = homes.most_common(1)[0]
    assert home in born and home not in old_ids, (homes, born)
    assert count / len(planted_units) >= 0.6
    assert counts["mode"] == "incremental" and counts["born"] >= 1


def test_schedule_shows_last_nightly_and_history_views_compare_runs(database_url, runs_over_time, miner_env):
    from typer.testing import CliRunner
    from miner.cli import app

    shown = CliRunner().invoke(app, ["schedule"], env=miner_env)
    assert shown.exit_code == 0, shown.output
    assert "02:30" in shown.stdout and STUDY in shown.stdout and runs_over_time["third"] in shown.stdout
    with psycopg.connect(database_url) as conn:
        jobs = conn.execute("SELECT count(DISTINCT job_id) FROM theme_history WHERE study = %s", (STUDY,)).fetchone()[0]
        published = conn.execute("SELECT job_id FROM latest_jobs WHERE study = %s", (STUDY,)).fetchone()[0]
    assert jobs == 3
    assert str(published) == runs_over_time["third"]


def test_beat_schedules_the_nightly_task(miner_env):
    import subprocess, sys, json

    code = ("import json; from workers.app import app; s = app.conf.beat_schedule['nightly-aggregation']; "
            "print(json.dumps({'task': s['task'], 'hour': sorted(s['schedule'].hour), 'minute': sorted(s['schedule'].minute)}))")
    out = subprocess.run([sys.executable, "-c", code], env={**miner_env, "MINER_NIGHTLY_AT": "03:15"},
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {"task": "miner.nightly", "hour": [3], "minute": [15]}


def test_nightly_writes_rows_only_for_new_interviews(database_url, runs_over_time):
    """Count rows written: shared rows (units, scrubbed texts, vectors) rewritten or added by the
    nightly job are exactly the new interviews'; its per-interview rows of the old interviews are the
    previous job's, unchanged; its counts say it understood only the new interviews."""
    second, third = runs_over_time["second"], runs_over_time["third"]
    before, after = runs_over_time["versions"]
    new_ids = {to_interview(s.record, STUDY, "x", 0).interview_id for s in runs_over_time["new"]}
    with psycopg.connect(database_url) as conn:
        new_units = {r[0] for r in conn.execute("SELECT unit_id FROM units WHERE interview_id = ANY(%s)",
                                                (sorted(new_ids),))}
        written = {table: {k for k, v in after[table].items() if before[table].get(k) != v} for table in after}
        assert written["units"] == new_units and written["scrubbed_units"] == new_units
        new_hashes = {r[0] for r in conn.execute("SELECT DISTINCT answer_hash FROM units WHERE interview_id = ANY(%s)",
                                                 (sorted(new_ids),))}
        assert not written["embeddings"] & before["embeddings"].keys()  # no old vector rewritten
        assert len(written["embeddings"]) <= len(new_hashes) + len(new_units)  # answers, units (and new questions)
        counts = repository_jobs.get_job(conn, third).counts
        assert counts["new_interviews"] == len(new_ids) == counts["understood_interviews"]
        assert counts["new_units"] == conn.execute(
            """SELECT count(*) FROM job_units j JOIN units u USING (unit_id)
               WHERE j.job_id = %s AND u.interview_id = ANY(%s)""", (third, sorted(new_ids))).fetchone()[0]
        for table in ("ratings", "quality_verdicts", "interview_engagement", "unit_insights", "assignments"):
            rows = lambda job: conn.execute(
                f"SELECT to_jsonb(t) - 'job_id' FROM {table} t WHERE job_id = %s ORDER BY 1", (job,)).fetchall()
            # An old unit without a theme may join a theme born tonight; every other old row is copied.
            old_rows = [r for r in rows(second) if table != "assignments" or r[0]["theme_id"] is not None]
            new_rows = set(map(str, rows(third)))
            assert old_rows and all(str(r) in new_rows for r in old_rows), table
        assert conn.execute("SELECT count(*) FROM quality_verdicts WHERE job_id = %s AND interview_id = ANY(%s)",
                            (third, sorted(new_ids))).fetchone()[0] == len(new_ids)


def test_nightly_answers_cut_into_opinion_units_take_their_mean_vector(database_url, runs_over_time, embedder):
    """The new interviews' answers of two or more opinion units are not embedded whole (nor their vectors
    cached); their sentiment comes from the normalised mean of their units' vectors."""
    third = runs_over_time["third"]
    before, after = runs_over_time["versions"]
    new_ids = {to_interview(s.record, STUDY, "x", 0).interview_id for s in runs_over_time["new"]}
    with psycopg.connect(database_url) as conn:
        assert check_answers_take_their_units_mean(conn, third, new_ids, embedder,
                                                   runs_over_time["embedded_tonight"]) >= 5
        split = {r[0] for r in conn.execute(
            """SELECT a.answer_hash FROM units a WHERE a.interview_id = ANY(%s) AND (
                   SELECT count(*) FROM units u WHERE u.answer_unit_id = a.unit_id) >= 2""", (sorted(new_ids),))}
    written = {k for k, v in after["embeddings"].items() if before["embeddings"].get(k) != v}
    assert split and not {f"{h}/{embedder.name}" for h in split} & written


def test_nightly_statistics_match_a_recount_of_every_interview(database_url, runs_over_time):
    """The nightly job's statistics, recomputed from stored per-interview values, are those of the
    whole study: engagement recounted from every interview, rating cells from every rating row."""
    from miner.stats import engagement

    third = runs_over_time["third"]
    with psycopg.connect(database_url) as conn:
        interviews = repository.load_job_interviews(conn, third)
        answers = repository_jobs.load_job_answers(conn, third)
        excluded = {r[0] for r in conn.execute(
            "SELECT interview_id FROM quality_verdicts WHERE job_id = %s AND low_quality", (third,))}
        stored = conn.execute("""SELECT session_model, interviews, excluded, chat_rounds, answer_words
                                 FROM engagement_stats WHERE job_id = %s ORDER BY 1""", (third,)).fetchall()
        cells = conn.execute("SELECT session_model, dimension, n FROM rating_stats WHERE job_id = %s ORDER BY 1, 2",
                             (third,)).fetchall()
        counted = conn.execute(
            """SELECT session_model, dimension, count(*) FROM ratings r WHERE job_id = %s AND NOT EXISTS (
                   SELECT 1 FROM quality_verdicts q WHERE q.job_id = r.job_id AND q.interview_id = r.interview_id
                   AND q.low_quality) GROUP BY 1, 2 ORDER BY 1, 2""", (third,)).fetchall()
        run = conn.execute("SELECT interviews FROM insight_runs WHERE job_id = %s", (third,)).fetchone()[0]
    recount = [(e.session_model, e.interviews, e.excluded, e.chat_rounds, e.answer_words)
               for e in engagement(interviews, answers, excluded)]
    assert [r[0] for r in stored] == [r[0] for r in recount] and len(interviews) == run == 330
    assert [x for r in stored for x in r[1:]] == pytest.approx([x for r in recount for x in r[1:]])
    assert [tuple(c) for c in cells] == [tuple(c) for c in counted]


def test_relabel_rule_new_themes_and_those_grown_by_a_fifth():
    from miner.nightly_steps import relabelled

    labelled = {0: 100, 1: 100, 2: 10}
    assert relabelled({0: 119, 1: 120, 2: 11, 7: 3}, labelled) == [1, 7]


def test_schedule_shows_new_answers_not_new_opinion_units(conn, miner_env):
    from typer.testing import CliRunner
    from miner.cli import app

    job_id = repository_jobs.create_job(conn, "schedule-columns", kind="nightly")
    # One answer can give several opinion units: the "new answers" column must not show the units.
    repository_jobs.update_job(conn, job_id, status="failed", counts={"new_answers": 7, "new_units": 11})
    conn.commit()
    try:
        shown = CliRunner().invoke(app, ["schedule"], env=miner_env)
    finally:
        conn.execute("DELETE FROM jobs WHERE job_id = %s", (job_id,))
        conn.commit()
    assert shown.exit_code == 0, shown.output
    row = next(line for line in shown.stdout.splitlines() if job_id in line)
    cells = [cell.strip() for cell in row.split("│")]  # "11" may be in the job id itself
    assert "new answers" in shown.stdout and "7" in cells and "11" not in cells
