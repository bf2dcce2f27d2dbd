"""A dead worker's job resumes within a minute with default settings (issue 13.6): workers beat in
Postgres, and a live worker re-drives the jobs of tasks whose worker stopped beating."""

from __future__ import annotations

import time
import uuid

import psutil
import psycopg
import pytest

from conftest import ready_worker, wait_for_job
from miner import heartbeat, repository_jobs
from miner.settings import Settings
from test_faults import ingest_and_queue, kill, rerun_in_process, snapshot, steps_of, wait_until

pytestmark = pytest.mark.timeout(900)

# Recovery must not depend on these being shortened: the test runs with their defaults.
TIMING_SETTINGS = ("MINER_VISIBILITY_TIMEOUT", "MINER_STALL_SECONDS", "MINER_WORKER_HEARTBEAT_SECONDS",
                   "MINER_WORKER_DEAD_SECONDS", "MINER_EMBED_CHUNK")


def default_env(miner_env) -> dict[str, str]:
    env = {k: v for k, v in miner_env.items() if k not in TIMING_SETTINGS}
    return {**env, "MINER_QUEUE": f"heartbeat-{uuid.uuid4().hex[:8]}"}


def step_owner(database_url, workers) -> object:
    """The worker process whose Postgres connection holds a step's advisory lock right now."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        ports = {r[0] for r in conn.execute(
            """SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a USING (pid)
               WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()
                 AND a.application_name = 'miner-worker'""")}
    for process in workers:
        if ports & {c.laddr.port for c in psutil.Process(process.pid).net_connections(kind="tcp")}:
            return process
    return None


def test_sigkilled_workers_job_resumes_within_a_minute_with_default_settings(miner_env, database_url, tmp_path):
    env = default_env(miner_env)
    assert Settings(**{k.removeprefix("MINER_").lower(): v for k, v in env.items() if k.startswith("MINER_")
                       and k != "MINER_HOME"}).visibility_timeout == 3600
    workers = [ready_worker(env, f"beat-{name}", tmp_path) for name in ("a", "b")]
    try:
        job_id = ingest_and_queue(env, "heartbeat", seed=21, tmp_path=tmp_path)
        wait_until(lambda: steps_of(database_url, job_id).get("cluster") == "running", what="the cluster step")
        wait_until(lambda: step_owner(database_url, workers) is not None
                   or steps_of(database_url, job_id).get("cluster") != "running", what="the step's worker")
        owner = step_owner(database_url, workers)
        assert owner is not None and steps_of(database_url, job_id).get("cluster") == "running", \
            "the cluster step ended before its worker could be killed"
        kill(owner)
        killed_at = time.monotonic()
        survivor = next(w for w in workers if w is not owner)

        def restarted() -> bool:
            with psycopg.connect(database_url, autocommit=True) as conn:
                return conn.execute("SELECT attempts FROM job_steps WHERE job_id = %s AND step = 'cluster'",
                                    (job_id,)).fetchone()[0] >= 2
        wait_until(restarted, timeout=60, interval=0.5, what="the killed step to start again on the other worker")
        recovery = time.monotonic() - killed_at
        print(f"\nrecovery: the cluster step restarted {recovery:.1f} s after its worker was SIGKILLed")
        assert wait_for_job(database_url, job_id, timeout=600) == "succeeded"
        assert survivor.poll() is None
    finally:
        for process in workers:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=60)
    baseline = rerun_in_process(database_url, env, "heartbeat")
    assert snapshot(database_url, job_id) == snapshot(database_url, baseline)


def test_orphaned_jobs_go_to_one_live_worker_only(conn, database_url):
    running = repository_jobs.create_job(conn, "orphans")
    finished = repository_jobs.create_job(conn, "orphans")
    conn.execute("UPDATE jobs SET status = 'running' WHERE job_id = %s", (running,))
    conn.execute("UPDATE jobs SET status = 'succeeded' WHERE job_id = %s", (finished,))
    conn.commit()
    params = heartbeat.HeartbeatParams(dead_after_seconds=20)
    heartbeat.beat(conn, "alive@host")
    heartbeat.beat(conn, "dead@host")
    heartbeat.claim(conn, "task-alive", "alive@host", running, "miner.cluster")
    heartbeat.claim(conn, "task-dead", "dead@host", running, "miner.embed")
    heartbeat.claim(conn, "task-done", "dead@host", finished, "miner.label")
    heartbeat.claim(conn, "task-unknown", "never-beat@host", running, "miner.embed")
    assert heartbeat.take_orphaned_jobs(conn, params) == []  # everyone beat (or started) just now

    # 25 s later: dead@host and never-beat@host fell silent, alive@host kept beating.
    conn.execute("UPDATE worker_heartbeats SET last_beat = last_beat - interval '25 s' WHERE worker = 'dead@host'")
    conn.execute("UPDATE worker_tasks SET started_at = started_at - interval '25 s'")
    conn.commit()
    with psycopg.connect(database_url) as other:
        assert heartbeat.take_orphaned_jobs(conn, params) == [running]
        assert heartbeat.take_orphaned_jobs(other, params) == []  # taken once, by one worker
    left = conn.execute("SELECT task_id FROM worker_tasks WHERE task_id LIKE 'task-%' ORDER BY 1").fetchall()
    assert left == [("task-alive",)]

    heartbeat.release(conn, "task-alive")
    heartbeat.stop(conn, "alive@host")
    assert conn.execute("SELECT count(*) FROM worker_tasks WHERE task_id LIKE 'task-%'").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM worker_heartbeats WHERE worker = 'alive@host'").fetchone()[0] == 0
