"""A job end to end through the CLI, Redis and a real Celery worker process."""

from __future__ import annotations

import json

import psycopg
from typer.testing import CliRunner

from conftest import wait_for_job
from miner.cli import app
from miner.sample import generate_sample, write_jsonl

STUDY = "through-celery"


def test_analyze_runs_on_a_real_worker(worker, miner_env, database_url, tmp_path):
    path = tmp_path / "study.jsonl"
    write_jsonl(generate_sample(120, seed=3), path)
    runner = CliRunner()
    ingested = runner.invoke(app, ["ingest", str(path), "--study", STUDY, "--json"], env=miner_env)
    assert json.loads(ingested.stdout) == {"stored": 120, "duplicates": 0, "quarantined": 0}

    queued = runner.invoke(app, ["analyze", "--study", STUDY], env=miner_env, catch_exceptions=False)
    assert queued.exit_code == 0, queued.output
    job_id = queued.stdout.strip().splitlines()[-1]
    assert wait_for_job(database_url, job_id) == "succeeded"

    with psycopg.connect(database_url) as conn:
        themes = conn.execute("SELECT count(*) FROM themes WHERE job_id = %s", (job_id,)).fetchone()[0]
        view = conn.execute("SELECT count(DISTINCT session_model), count(DISTINCT theme_id) FROM theme_by_model "
                            "WHERE study = %s", (STUDY,)).fetchone()
        worker_host = conn.execute("SELECT status, progress FROM jobs WHERE job_id = %s", (job_id,)).fetchone()
    assert themes >= 3
    assert view == (3, themes)
    assert worker_host == ("succeeded", 1.0)

    listing = runner.invoke(app, ["jobs", "--study", STUDY], env=miner_env)
    assert job_id[:8] in listing.stdout and "succeeded" in listing.stdout
    shown = runner.invoke(app, ["jobs", "show", job_id], env=miner_env)
    assert "succeeded" in shown.stdout and '"units":' in shown.stdout


def test_analyze_wait_follows_progress_to_the_end(worker, miner_env, database_url, tmp_path):
    path = tmp_path / "study.jsonl"
    write_jsonl(generate_sample(60, seed=4), path)
    runner = CliRunner()
    runner.invoke(app, ["ingest", str(path), "--study", "waited"], env=miner_env)
    result = runner.invoke(app, ["analyze", "--study", "waited", "--wait"], env=miner_env)
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.stdout and "100%" in result.stdout


def test_analyze_unknown_study_is_refused(miner_env):
    result = CliRunner().invoke(app, ["analyze", "--study", "never-ingested"], env=miner_env)
    assert result.exit_code == 2
    assert "no interviews" in result.stdout
