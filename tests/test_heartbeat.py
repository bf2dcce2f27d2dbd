"""A dead worker's job resumes within a minute with default settings (issue 13.6): workers beat in
Postgres, and a live worker re-drives the jobs of tasks whose worker stopped beating."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import psutil
import psycopg
import pytest

from conftest import REPO, ready_worker, wait_for_job
from miner import heartbeat, repository_jobs, repository_workers
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
    conn.execute("UPDATE worker_heartbeats SET started_at = started_at - interval '25 s' "
                 "WHERE worker IN ('alive@host', 'dead@host')")
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


def age(conn, seconds: int, worker: str) -> None:
    """`seconds` pass for `worker`: its last beat and its rows get that much older."""
    conn.execute("UPDATE worker_heartbeats SET last_beat = last_beat - make_interval(secs => %s), "
                 "started_at = started_at - make_interval(secs => %s) WHERE worker = %s", (seconds, seconds, worker))
    conn.execute("UPDATE worker_tasks SET started_at = started_at - make_interval(secs => %s), "
                 "finished_at = finished_at - make_interval(secs => %s) WHERE worker = %s",
                 (seconds, seconds, worker))
    conn.commit()


def test_a_worker_killed_between_two_steps_still_marks_its_job(conn):
    # The gap seen in a fresh-clone run: a worker ends a step, takes the next step's message from the
    # broker and is killed before it records it. Its last finished step must still mark the job.
    job = repository_jobs.create_job(conn, "between-steps")
    other = repository_jobs.create_job(conn, "between-steps")
    conn.execute("UPDATE jobs SET status = 'running' WHERE job_id IN (%s, %s)", (job, other))
    conn.commit()
    params = heartbeat.HeartbeatParams(dead_after_seconds=20)
    heartbeat.beat(conn, "between@host")
    heartbeat.claim(conn, "embed-1", "between@host", job, "miner.step")
    heartbeat.release(conn, "embed-1")
    assert heartbeat.take_orphaned_jobs(conn, params) == []  # alive
    age(conn, 25, "between@host")
    assert heartbeat.take_orphaned_jobs(conn, params) == [job]
    assert heartbeat.take_orphaned_jobs(conn, params) == []  # re-driven once

    # A live worker keeps one finished row per job in progress: the next step of the job supersedes
    # the last one, and a finished job's row goes at the worker's next claim.
    heartbeat.beat(conn, "busy@host")
    heartbeat.claim(conn, "a-1", "busy@host", job, "miner.step")
    heartbeat.release(conn, "a-1")
    heartbeat.claim(conn, "b-1", "busy@host", other, "miner.step")
    heartbeat.release(conn, "b-1")
    heartbeat.claim(conn, "a-2", "busy@host", job, "miner.step")
    rows = lambda: conn.execute("SELECT task_id, finished_at IS NOT NULL FROM worker_tasks "
                                "WHERE worker = 'busy@host' ORDER BY 1").fetchall()
    assert rows() == [("a-2", False), ("b-1", True)]
    conn.execute("UPDATE jobs SET status = 'succeeded' WHERE job_id = %s", (other,))
    conn.commit()
    heartbeat.release(conn, "a-2")
    heartbeat.claim(conn, "a-3", "busy@host", job, "miner.step")
    assert rows() == [("a-3", False)]
    heartbeat.release(conn, "a-3")
    heartbeat.stop(conn, "busy@host")  # a clean shutdown hands its messages back: nothing to re-drive
    assert rows() == []


def test_rows_of_an_earlier_process_under_a_restarted_workers_name_are_orphaned(conn):
    # A container restarted after an OOM kill keeps its hostname, so the new worker beats under the
    # dead one's name at once: the dead process's rows must not pass for the new one's.
    job = repository_jobs.create_job(conn, "restarted")
    conn.execute("UPDATE jobs SET status = 'running' WHERE job_id = %s", (job,))
    conn.commit()
    params = heartbeat.HeartbeatParams(dead_after_seconds=20)
    repository_workers.beat(conn, "worker-c0ffee@c0ffee", "c0ffee", 1, "first")
    heartbeat.claim(conn, "cluster-1", "worker-c0ffee@c0ffee", job, "miner.step")
    age(conn, 3, "worker-c0ffee@c0ffee")
    repository_workers.beat(conn, "worker-c0ffee@c0ffee", "c0ffee", 1, "first")  # the same process beats on
    conn.commit()
    assert heartbeat.take_orphaned_jobs(conn, params) == []
    # Restarted 3 s later: pid 1 again in its container, a new process.
    repository_workers.beat(conn, "worker-c0ffee@c0ffee", "c0ffee", 1, "second")
    conn.commit()
    assert heartbeat.take_orphaned_jobs(conn, params) == [job]


def test_a_worker_restarted_under_its_name_resumes_its_killed_step_with_default_settings(
        miner_env, database_url, tmp_path):
    env = default_env(miner_env)
    first = ready_worker(env, "beat-same", tmp_path)
    workers = [first]
    try:
        job_id = ingest_and_queue(env, "restarted", seed=23, tmp_path=tmp_path, interviews=80)
        wait_until(lambda: steps_of(database_url, job_id).get("cluster") == "running", what="the cluster step")
        wait_until(lambda: step_owner(database_url, workers) is not None
                   or steps_of(database_url, job_id).get("cluster") != "running", what="the step's worker")
        assert step_owner(database_url, workers) is first and steps_of(database_url, job_id).get("cluster") == "running", \
            "the cluster step ended before its worker could be killed"
        kill(first)
        # Restarted at once under the same node name (Compose's `worker-%h` after a container restart):
        # it beats under that name, so only the claim's age against the new process tells it is dead.
        workers.append(ready_worker(env, "beat-same", tmp_path))

        def restarted() -> bool:
            with psycopg.connect(database_url, autocommit=True) as conn:
                return conn.execute("SELECT attempts FROM job_steps WHERE job_id = %s AND step = 'cluster'",
                                    (job_id,)).fetchone()[0] >= 2
        wait_until(restarted, timeout=60, interval=0.5, what="the killed step to start again on the restarted worker")
        assert wait_for_job(database_url, job_id, timeout=600) == "succeeded"
    finally:
        for process in workers:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=60)


# A worker's consumer as the broker sees it: it takes the next message of the queue (Redis moves it to
# its unacknowledged set) and is killed at once, before any of miner's code runs for that message.
TAKE_AND_DIE = """
import os
from workers.app import app, settings
with app.connection_for_write() as connection:
    message = connection.default_channel.basic_get(settings.queue, no_ack=False)
    assert message is not None, "no message in the queue"
    print(message.headers["task"], message.headers["id"], message.delivery_info["routing_key"], flush=True)
    os._exit(0)
"""


def test_a_step_taken_by_a_worker_killed_before_it_recorded_it_is_handed_back_with_default_settings(
        miner_env, database_url, tmp_path):
    env = default_env(miner_env)
    job_id = ingest_and_queue(env, "taken", seed=25, tmp_path=tmp_path, interviews=60)  # no worker yet
    taken = subprocess.run([sys.executable, "-c", TAKE_AND_DIE], env=env, cwd=REPO, capture_output=True, text=True,
                           timeout=120)
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert taken.stdout.split()[0] == "miner.analyze" and taken.stdout.split()[2] == env["MINER_QUEUE"]
    # Redis would hand the message back after the visibility timeout (an hour); no beat runs the watchdog.
    worker = ready_worker(env, "beat-taker", tmp_path)
    try:
        assert wait_for_job(database_url, job_id, timeout=300) == "succeeded"
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    assert f"handed back step task {taken.stdout.split()[1]}" in (tmp_path / "beat-taker.log").read_text()


# A consumer takes the first of three step messages and dies (its channel is never closed, so kombu
# does not restore it); a live worker's check then hands it back. The queue is consumed from its
# right end (kombu publishes with LPUSH and takes with RPOP), so 'the front' is where RPOP takes next.
HAND_BACK_ORDER = """
import os, sys, uuid
from miner import db
from workers.app import app, settings, database_url
from workers.heartbeat import hand_back_unrecorded
job_id = str(uuid.uuid4())
for name in ("first", "second", "third"):
    app.send_task("miner.step", args=[job_id, name], task_id=f"{name}-{job_id}", queue=settings.queue)
taker = app.connection_for_write()
message = taker.default_channel.basic_get(settings.queue, no_ack=False)
assert message.headers["id"] == f"first-{job_id}", message.headers["id"]
with db.connect(database_url) as conn:
    print("handed back", [t.split("-")[0] for t in hand_back_unrecorded(conn, 0)], flush=True)
with app.connection_for_write() as connection:
    order = []
    while (m := connection.default_channel.basic_get(settings.queue, no_ack=True)) is not None:
        order.append(m.headers["id"].split("-")[0])
print("order", order, flush=True)
os._exit(0)
"""


def test_a_handed_back_step_goes_to_the_front_of_its_queue(miner_env, database_url):
    # The message's job was in progress: it must not wait behind every step queued since.
    env = default_env(miner_env)
    run = subprocess.run([sys.executable, "-c", HAND_BACK_ORDER], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "handed back ['first']" in run.stdout, run.stdout
    assert "order ['first', 'second', 'third']" in run.stdout, run.stdout


# A worker took a step message, recorded it and started the step, then fell silent: a live worker's
# check re-drives the job (a new message). The dead worker's message, its row just taken with the job,
# must not be handed back as well: the job would run that step twice, each copy queuing the steps after it.
REDRIVE_NOT_HAND_BACK = """
import os, time
from miner import db, heartbeat, repository_jobs
from miner.steps import STEPS
from workers.app import app, settings, database_url
from workers.heartbeat import HeartbeatThread
with db.connect(database_url) as conn:
    job_id = repository_jobs.create_job(conn, "redriven")
    conn.commit()
app.send_task("miner.analyze", args=[job_id], task_id=f"taken-{job_id}", queue=settings.queue)
app.send_task("miner.step", args=[job_id, "embed", 3], task_id=f"part3-{job_id}", queue=settings.queue)
taker = app.connection_for_write()
message = taker.default_channel.basic_get(settings.queue, no_ack=False)
# Another worker took a part of a later step and died before recording it, while a sibling part ran.
part3 = taker.default_channel.basic_get(settings.queue, no_ack=False)
with db.connect(database_url) as conn:
    heartbeat.beat(conn, "silent@host")
    heartbeat.claim(conn, message.headers["id"], "silent@host", job_id, "miner.analyze")
    repository_jobs.start_step(conn, job_id, STEPS[0].name)
    repository_jobs.start_step(conn, job_id, "embed:1")
    conn.commit()
    # 25 s pass: the worker took the message, recorded it and stopped beating.
    conn.execute("UPDATE worker_heartbeats SET last_beat = last_beat - interval '25 s' WHERE worker = 'silent@host'")
    conn.execute("UPDATE worker_tasks SET started_at = started_at - interval '25 s' WHERE worker = 'silent@host'")
    conn.commit()
    taker.default_channel.client.zadd("unacked_index", {message.delivery_tag: time.time() - 25,
                                                        part3.delivery_tag: time.time() - 25})
    HeartbeatThread(database_url, "live@host", heartbeat.HeartbeatParams(dead_after_seconds=20)).check(conn)
    heartbeat.stop(conn, "live@host")
with app.connection_for_write() as connection:
    queued = []
    while (m := connection.default_channel.basic_get(settings.queue, no_ack=True)) is not None:
        queued.append(m.headers["id"].split("-")[0] if "-" + job_id in m.headers["id"] else "new")
print("queued", queued, flush=True)
message.ack()  # leaves nothing for Redis to restore an hour from now
os._exit(0)
"""


def test_a_step_whose_job_was_re_driven_is_not_handed_back_as_well(miner_env, database_url):
    env = default_env(miner_env)
    run = subprocess.run([sys.executable, "-c", REDRIVE_NOT_HAND_BACK], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    # The part nobody recorded nor started is handed back, to the front; the re-driven step is not.
    assert "queued ['part3', 'new']" in run.stdout, run.stdout + run.stderr[-2000:]
