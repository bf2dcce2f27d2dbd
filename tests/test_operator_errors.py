"""Operator errors (issue 13.7): empty settings mean unset, an unreachable broker or database, a bad
job id or path give one clear line and a non-zero exit, `--wait` says when no worker consumes the
queue, and the default export folder stays inside the working directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from conftest import REPO, RUN_TAG
from miner import repository, repository_jobs
from miner.cli import app
from miner.ingest import to_interview
from miner.settings import Settings
from test_ingest import variant

CLOSED_PORT_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def invoke(env: dict[str, str], *args: str):
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def assert_one_clear_line(result, *expected: str) -> None:
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for text in expected:
        assert text in lines[0], lines[0]


def study_with_interviews(conn, study: str) -> None:
    repository.save_interviews(conn, [to_interview(variant(id=f"{study}-{n}"), study, "t.jsonl", n) for n in range(3)])
    conn.commit()


@pytest.mark.parametrize("name", ["MINER_DATABASE_URL", "MINER_BROKER_URL", "MINER_LLM_BASE_URL"])
def test_empty_url_variable_means_unset(monkeypatch, name):
    monkeypatch.setenv(name, "")
    assert getattr(Settings(), name.removeprefix("MINER_").lower()) is None
    assert Settings(**{name.removeprefix("MINER_").lower(): "  "}).model_dump()[name.removeprefix("MINER_").lower()] is None


def test_empty_database_url_goes_to_the_embedded_server_not_libpq_defaults(tmp_path):
    # MINER_HOME is a file, so starting the embedded server fails at once and says where; libpq's
    # defaults point at a closed port, so reading "" as libpq defaults fails differently (and never
    # migrates whatever database the defaults reach, which is what the bug did).
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    env = {**os.environ, "MINER_DATABASE_URL": "", "MINER_HOME": str(home), "PGHOST": "127.0.0.1", "PGPORT": "1"}
    done = subprocess.run([sys.executable, "-m", "miner.cli", "db", "status"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr
    assert str(home) in done.stdout and "port 1" not in done.stdout, done.stdout


def test_wrong_database_url_is_one_line_with_the_password_masked(miner_env):
    env = {**miner_env, "MINER_DATABASE_URL": "postgresql://someone:s3cret@127.0.0.1:1/nowhere"}
    for command in (["jobs"], ["db", "status"]):
        result = invoke(env, *command)
        assert_one_clear_line(result, "cannot connect to the database", "someone:***@127.0.0.1:1/nowhere")
        assert "s3cret" not in result.output and result.exit_code == 2
    assert_one_clear_line(invoke({**miner_env, "MINER_DATABASE_URL": "not a url"}, "jobs"), "cannot connect")


@pytest.mark.parametrize("command", [["jobs", "show"], ["jobs", "cancel"], ["jobs", "retry"]])
def test_malformed_job_id_is_one_line(miner_env, command):
    assert_one_clear_line(invoke(miner_env, *command, "not-a-uuid"), "'not-a-uuid' is not a job id")


def test_bad_paths_are_one_line(miner_env, tmp_path):
    existing = tmp_path / "existing.csv"
    existing.write_text("x\n")
    assert_one_clear_line(invoke(miner_env, "export", "--study", "any", "--out", str(existing)),
                          f"--out {existing} is a file")
    missing = tmp_path / "no" / "such" / "dir"
    assert_one_clear_line(invoke(miner_env, "sample", "--out", str(missing / "s.jsonl"), "--interviews", "3"),
                          "No such file or directory", str(missing))
    assert_one_clear_line(invoke(miner_env, "ingest", str(missing), "--study", "x"), "no such file or directory")
    assert_one_clear_line(invoke({**miner_env, "MINER_SEED": "many"}, "jobs"), "MINER_SEED")


@pytest.mark.parametrize("study", ["../../x", "/etc/passwd", "a/../../b", "..", ".hidden", "\u202egnp.exe", "x\n\x00y",
                                   "=cmd|' /C calc'!A0"])
def test_default_export_dir_is_one_safe_component_of_the_working_directory(study):
    from miner.export import default_export_dir

    folder = default_export_dir(study)
    assert len(folder.parts) == 1 and not folder.name.startswith(".")
    assert folder.name.endswith("-export") and all(ch.isalnum() or ch in "._-" for ch in folder.name)
    cwd = Path.cwd().resolve()
    assert (cwd / folder).resolve().parent == cwd


def test_broker_down_prints_the_job_id_and_the_job_can_be_retried(miner_env, conn, broker_url):
    study = f"broker-down-{RUN_TAG}"
    study_with_interviews(conn, study)
    queue = f"broker-down-{RUN_TAG}"
    try:
        down = invoke({**miner_env, "MINER_BROKER_URL": CLOSED_PORT_BROKER, "MINER_QUEUE": queue},
                      "analyze", "--study", study)
        assert down.exit_code == 2
        job_id, message = [line for line in down.output.splitlines() if line.strip()]
        assert "the broker is unreachable" in message and f"miner jobs retry {job_id}" in message
        job = repository_jobs.get_job(conn, job_id)
        assert job.status == "failed" and "broker is unreachable" in job.error

        retried = invoke({**miner_env, "MINER_QUEUE": queue}, "jobs", "retry", job_id)
        assert retried.exit_code == 0 and f"job {job_id} resumes at step" in retried.output
        conn.rollback()
        assert repository_jobs.get_job(conn, job_id).status == "queued"
        assert redis.Redis.from_url(broker_url).llen(queue) == 1  # sent this time
    finally:
        redis.Redis.from_url(broker_url).delete(queue)


def test_wait_without_a_worker_says_so_and_keeps_the_job(miner_env, conn, broker_url):
    study = f"no-worker-{RUN_TAG}"
    study_with_interviews(conn, study)
    queue = f"no-worker-{RUN_TAG}"  # no worker of any test run consumes it
    # PYTHONFAULTHANDLER: if the CLI outlives Ctrl-C, SIGABRT makes it print every thread's stack here.
    env = {**miner_env, "MINER_QUEUE": queue, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
    process = subprocess.Popen([sys.executable, "-m", "miner.cli", "analyze", "--study", study, "--wait"],
                               env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines, deadline = [], time.monotonic() + 60
        while time.monotonic() < deadline and not any("no worker is consuming" in line for line in lines):
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
        assert any(f"no worker is consuming queue {queue}; start one with `celery -A workers.app worker`" in line
                   for line in lines), "".join(lines)
        job_id = lines[0].strip()
        process.send_signal(signal.SIGINT)
        try:
            rest, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            stacks, _ = process.communicate(timeout=30)
            pytest.fail(f"`miner analyze --wait` still ran 30 s after Ctrl-C; its threads:\n{stacks}")
        assert process.returncode == 130 and f"stopped waiting; job {job_id} goes on" in rest
        conn.rollback()
        assert repository_jobs.get_job(conn, job_id).status == "queued"  # a worker started later still runs it
    finally:
        if process.poll() is None:
            process.kill()
        redis.Redis.from_url(broker_url).delete(queue)


def test_log_level_in_lower_case_works_and_a_wrong_one_is_one_line(miner_env):
    def run(level):
        return subprocess.run([sys.executable, "-m", "miner.cli", "db", "url"], env={**miner_env, "MINER_LOG_LEVEL": level},
                              cwd=REPO, capture_output=True, text=True, timeout=120)

    lower = run("debug")
    assert lower.returncode == 0 and "Traceback" not in lower.stderr, lower.stderr
    wrong = run("verbose")
    assert wrong.returncode == 2 and "Traceback" not in wrong.stdout + wrong.stderr, wrong.stdout + wrong.stderr
    assert "error:" in wrong.stdout and "MINER_LOG_LEVEL" in wrong.stdout and "WARNING" in wrong.stdout


@pytest.mark.parametrize(("setting", "value", "command"), [
    ("MINER_EMBEDDER", "nope", ["eval", "ratings", "--study", "no-such-study"]),
    ("MINER_THEME_CLUSTERER", "nope", ["eval", "ratings", "--study", "no-such-study"]),
    ("MINER_CLUSTERER", "nope", ["eval", "clusters", "labelled.csv"]),
    ("MINER_SEED", "abc", ["eval", "clusters", "labelled.csv"]),
    ("MINER_SEED", "abc", ["eval", "opinions", "labelled.csv"]),
    ("MINER_LLM_MODEL", "", ["eval", "ratings", "--study", "no-such-study"]),  # an endpoint without a model
    ("MINER_NIGHTLY_AT", "25:99", ["schedule"]),
])
def test_invalid_settings_are_one_line_naming_the_setting(miner_env, tmp_path, monkeypatch, setting, value, command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "labelled.csv").write_text("text,category,opinions\nit was fast,speed,speed:positive\n")
    env = {**miner_env, setting: value}
    if setting == "MINER_LLM_MODEL":
        env["MINER_LLM_BASE_URL"] = "http://127.0.0.1:1/v1"
    result = CliRunner().invoke(app, command, env=env)
    assert result.exit_code == 2, (result.output, result.exception)
    assert "error: invalid setting" in result.output and setting in result.output, result.output


def test_nightly_at_is_a_time_of_day():
    assert Settings(nightly_at="2:30").nightly_at == "02:30"
    for wrong in ("25:99", "0230", "noon"):
        with pytest.raises(ValueError, match="MINER_NIGHTLY_AT|HH:MM"):
            Settings(nightly_at=wrong)


def test_a_negative_token_budget_is_refused_before_a_job_is_queued(miner_env, conn):
    study_with_interviews(conn, "negative-budget")
    flag = CliRunner().invoke(app, ["analyze", "--study", "negative-budget", "--token-budget", "-1"], env=miner_env)
    assert flag.exit_code == 2 and "--token-budget" in flag.output, flag.output
    setting = CliRunner().invoke(app, ["analyze", "--study", "negative-budget"],
                                 env={**miner_env, "MINER_LLM_TOKEN_BUDGET": "-5"})
    assert setting.exit_code == 2 and "MINER_LLM_TOKEN_BUDGET" in setting.output, setting.output
    assert repository_jobs.list_jobs(conn, "negative-budget") == []


@pytest.mark.parametrize("command", [["jobs", "show"], ["jobs", "cancel"], ["jobs", "retry"]])
def test_unknown_job_id_is_one_error_line(miner_env, command):
    missing = "00000000-0000-0000-0000-000000000000"
    result = invoke(miner_env, *command, missing)
    assert_one_clear_line(result, f"no job {missing}")
    assert result.exit_code == 2


def test_cancelling_a_finished_job_is_one_error_line(miner_env, conn):
    study = f"cancel-done-{RUN_TAG}"
    study_with_interviews(conn, study)
    job_id = repository_jobs.create_job(conn, study)
    repository_jobs.update_job(conn, job_id, status="failed", error="x")
    conn.commit()
    result = invoke(miner_env, "jobs", "cancel", job_id)
    assert_one_clear_line(result, f"job {job_id} is failed", "only a queued or running job can be cancelled")
    assert result.exit_code == 2


def test_unknown_correction_is_one_error_line_and_queues_nothing(miner_env, conn):
    study = f"correction-{RUN_TAG}"
    study_with_interviews(conn, study)
    result = invoke(miner_env, "analyze", "--study", study, "--correction", "bonferroni")
    assert_one_clear_line(result, "--correction must be bh or holm, not 'bonferroni'")
    assert result.exit_code == 2
    conn.rollback()
    assert [j for j in repository_jobs.list_jobs(conn) if j.study == study] == []


def test_bad_reader_role_name_is_one_error_line_quoting_it_as_given(miner_env):
    result = invoke({**miner_env, "MINER_READER_PASSWORD": "pw"}, "db", "grant-reader", "Bad[red]Name")
    assert_one_clear_line(result, "role name 'Bad[red]Name'")  # rich markup in the name is shown, not applied
    assert result.exit_code == 2


def test_jobs_show_does_not_call_an_unfinished_job_extractive(miner_env, conn):
    """A running job's ledger is empty until its calls are recorded: that is not 'extractive labels'."""
    study = f"show-running-{RUN_TAG}"
    study_with_interviews(conn, study)
    job_id = repository_jobs.create_job(conn, study)
    conn.commit()
    queued = invoke(miner_env, "jobs", "show", job_id)
    assert queued.exit_code == 0 and "no LLM calls recorded yet" in queued.output, queued.output
    assert "extractive" not in queued.output
    repository_jobs.update_job(conn, job_id, status="succeeded")
    conn.commit()
    done = invoke(miner_env, "jobs", "show", job_id)
    assert "no LLM calls (extractive labels)" in done.output, done.output


def test_jobs_show_says_a_zero_token_budget(miner_env, conn):
    """`miner analyze --token-budget 0` (no LLM spend for this job) is a budget of 0, not 'no budget'."""
    from miner.records import LLMCall

    study = f"zero-budget-{RUN_TAG}"
    study_with_interviews(conn, study)
    job_id = repository_jobs.create_job(conn, study, params={"token_budget": 0})
    repository.save_llm_calls(conn, job_id, [LLMCall("label", "m", "k", False, 0, "budget", theme_id=0)])
    repository_jobs.update_job(conn, job_id, status="succeeded", counts={"llm_token_budget": 0,
                                                                         "llm_budget_exhausted": True})
    conn.commit()
    result = invoke(miner_env, "jobs", "show", job_id)
    assert result.exit_code == 0 and "tokens: 0 billed of a 0 budget" in result.output, result.output
    assert "no budget" not in result.output


def test_waiting_on_a_cancelled_job_says_so_without_an_empty_reason(conn, capsys):
    from miner.cli import wait_for_job

    study = f"wait-cancelled-{RUN_TAG}"
    study_with_interviews(conn, study)
    job_id = repository_jobs.create_job(conn, study)
    repository_jobs.update_job(conn, job_id, status="cancelled")
    conn.commit()
    assert wait_for_job(conn, job_id) == "cancelled"
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"job {job_id} cancelled", last
