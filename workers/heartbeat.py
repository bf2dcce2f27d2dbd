"""The worker side of miner.heartbeat: a thread that beats and re-drives orphaned jobs, and task
signals that record which worker runs which step.

Loaded by the worker through `include` in workers/app.py; nothing here runs in the CLI.
"""

from __future__ import annotations

import base64
import inspect
import json
import logging
import threading
import time

import psycopg
from celery import signals

from miner import db, heartbeat, repository_workers

logger = logging.getLogger(__name__)

_thread: HeartbeatThread | None = None
# Step tasks this process runs now (task id → job id, task name). Each beat claims them again: a
# worker that could not beat for a while (a long call holding the GIL) may have been taken for
# dead and lost its claims to a live worker's check, and must own its steps again once it beats.
# That is the solo pool, where steps and beats share one process; under prefork the steps run in
# child processes (each with its own copy of this dict, never read), while the main process beats
# undisturbed, so it is not taken for dead.
_running: dict[str, tuple[str, str]] = {}


class HeartbeatThread(threading.Thread):
    """Beats for this worker every `beat_seconds` and re-drives jobs whose worker stopped beating."""

    def __init__(self, database_url: str, worker: str, params: heartbeat.HeartbeatParams):
        super().__init__(name="miner-heartbeat", daemon=True)
        self.database_url, self.worker, self.params = database_url, worker, params
        self.stopped = threading.Event()

    def run(self) -> None:
        conn: psycopg.Connection | None = None
        while not self.stopped.is_set():
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = db.connect(self.database_url, application_name="miner-heartbeat")
                self.check(conn)
            except psycopg.Error:  # the database went away for a moment: beat again next time
                logger.warning("heartbeat: %s could not reach the database", self.worker, exc_info=True)
                conn = None
            except Exception:  # a broker hiccup while re-driving must not end the beating
                logger.exception("heartbeat: %s failed to re-drive a job", self.worker)
            self.stopped.wait(self.params.beat_seconds)
        if conn is not None and not conn.closed:
            conn.close()

    def check(self, conn: psycopg.Connection) -> None:
        from miner import repository_jobs
        from workers.tasks import continue_job

        heartbeat.beat(conn, self.worker)
        for task_id, (job_id, task) in list(_running.items()):
            heartbeat.claim(conn, task_id, self.worker, job_id, task)
        for job_id in heartbeat.take_orphaned_jobs(conn, self.params):
            repository_jobs.touch_job(conn, job_id)  # the watchdog need not re-drive it as well
            conn.commit()
            step = continue_job(conn, job_id)
            conn.rollback()
            logger.warning("heartbeat: %s re-drove job %s at step %s", self.worker, job_id, step)
        for task_id in hand_back_unrecorded(conn, self.params.dead_after_seconds):
            logger.warning("heartbeat: %s handed back step task %s, taken from the broker by a worker that died "
                           "before it could record it", self.worker, task_id)


def hand_back_unrecorded(conn: psycopg.Connection, dead_after_seconds: float) -> list[str]:
    """Step messages a worker took from Redis over `dead_after_seconds` ago and no worker recorded go
    back to the front of their queue; returns their task ids.

    A live worker records a step within milliseconds of its message's arrival (claim_received_step),
    so such a message's worker died in between, and Redis would hand it back only after the
    visibility timeout (an hour). Not a message whose step started after it was taken, or is done: its
    worker had recorded it, and its row is gone because take_orphaned_jobs took it and re-drove the
    job (handing it back too would deliver the step twice, each copy queuing the steps after it).
    Other brokers (AMQP) hand a dead consumer's messages back at once: nothing to do there.
    """
    from workers.app import app, settings
    from workers.tasks import StepTask

    step_tasks = {name for name, task in app.tasks.items() if isinstance(task, StepTask)}
    with app.pool.acquire(block=True) as connection:
        channel = connection.default_channel
        if not hasattr(channel, "unacked_index_key"):  # not the Redis transport
            return []
        client = channel.client
        taken: dict[str, bytes] = {}
        messages: list[tuple[str, str | None, str | None, float]] = []
        for tag, taken_at in client.zrangebyscore(channel.unacked_index_key, 0, time.time() - dead_after_seconds,
                                                  withscores=True):
            raw = client.hget(channel.unacked_key, tag)
            if raw is None:  # acknowledged meanwhile
                continue
            message, _exchange, routing_key = json.loads(raw)
            headers = message.get("headers") or {}
            if routing_key == settings.queue and headers.get("task") in step_tasks and headers.get("id"):
                taken[headers["id"]] = tag
                messages.append((headers["id"], *_message_step(app.tasks[headers["task"]], message), taken_at))
        if not taken:
            return []
        lost = repository_workers.unrecorded_tasks(conn, messages)
        conn.rollback()
        # Atomic in Redis: of several workers handing it back, one does. To the front of the queue, the
        # end kombu takes from (it publishes with LPUSH and consumes with RPOP): leftmost=True would LPUSH
        # it behind every message queued since.
        for task_id in lost:
            channel.qos.restore_by_tag(taken[task_id], client, leftmost=False)
        return lost


def _message_step(task, message: dict) -> tuple[str | None, str | None]:
    """The job id and step key (as in job_steps) of a step message as kombu keeps it (a JSON body,
    base64-encoded); None for what cannot be read."""
    from miner.jobs import step_key
    from miner.steps import STEPS

    try:
        body = message["body"]
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, kwargs, _embed = json.loads(body)
        arguments = inspect.signature(task.run).bind(*args, **kwargs).arguments
    except (KeyError, TypeError, ValueError):
        return None, None
    job_id = arguments.get("job_id")
    return (str(job_id) if job_id is not None else None,
            step_key(arguments.get("name", STEPS[0].name), arguments.get("part")))


def _database_url() -> str:
    from workers.app import database_url

    return database_url


def _params() -> heartbeat.HeartbeatParams:
    from workers.app import settings

    return heartbeat.HeartbeatParams(beat_seconds=settings.worker_heartbeat_seconds,
                                     dead_after_seconds=settings.worker_dead_seconds)


@signals.worker_ready.connect
def start_beating(sender, **_) -> None:
    global _thread
    _thread = HeartbeatThread(_database_url(), sender.hostname, _params())
    # The first beat before any message is taken: a row recorded before this process's first beat
    # under the same name is a previous process's (miner.repository_workers.take_orphaned_jobs).
    try:
        with db.connect(_database_url(), application_name="miner-heartbeat") as conn:
            heartbeat.beat(conn, _thread.worker)
    except psycopg.Error:  # the thread keeps trying
        logger.warning("heartbeat: %s could not reach the database", _thread.worker, exc_info=True)
    _thread.start()


@signals.worker_shutdown.connect
def stop_beating(sender, **_) -> None:
    if _thread is None:
        return
    _thread.stopped.set()
    _thread.join(timeout=10)
    try:
        with db.connect(_database_url()) as conn:
            heartbeat.stop(conn, _thread.worker)
    except psycopg.Error:
        logger.warning("heartbeat: could not record the shutdown of %s", _thread.worker, exc_info=True)


def _step_job_id(task, args, kwargs) -> str | None:
    """The job id of a step task (they all take it first), None for other tasks."""
    from workers.tasks import StepTask

    if not isinstance(task, StepTask):
        return None
    return kwargs.get("job_id") if kwargs and "job_id" in kwargs else (args[0] if args else None)


@signals.task_received.connect
def claim_received_step(sender=None, request=None, **_) -> None:
    """Record a step as soon as its message arrives (in the consumer, before it runs, or while it
    waits for a retry's countdown): a worker killed before the step starts leaves this row behind."""
    job_id = _step_job_id(request.task, request.args, request.kwargs)
    if job_id is not None:  # if this fails, the step claims itself again when it starts
        _record(request.id, request.hostname or sender.hostname, str(job_id), request.name)


@signals.task_prerun.connect
def claim_step(sender=None, task_id=None, task=None, args=None, kwargs=None, **_) -> None:
    job_id = _step_job_id(task, args, kwargs)
    if job_id is None:
        return
    _running[task_id] = (str(job_id), task.name)
    _record(task_id, task.request.hostname or "", str(job_id), task.name)  # a failure: the step meets it too


def _record(task_id: str, worker: str, job_id: str, task: str) -> None:
    """heartbeat.claim on a connection of its own; a database error is logged, not raised."""
    try:
        with db.connect(_database_url()) as conn:
            heartbeat.claim(conn, task_id, worker, job_id, task)
    except psycopg.Error:
        logger.warning("heartbeat: could not record task %s of job %s", task_id, job_id, exc_info=True)


@signals.task_postrun.connect
def release_step(sender=None, task_id=None, task=None, args=None, kwargs=None, **_) -> None:
    if _step_job_id(task, args, kwargs) is None:
        return
    _running.pop(task_id, None)
    try:
        with db.connect(_database_url()) as conn:
            heartbeat.release(conn, task_id)
    except psycopg.Error:  # a row left behind is re-driven once this worker stops beating: harmless
        logger.warning("heartbeat: could not release task %s", task_id, exc_info=True)
