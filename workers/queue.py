"""Enqueueing from outside a worker (the CLI): a bare client app, no embedded-server side effects."""

from __future__ import annotations

from celery import Celery

ANALYZE_TASK = "miner.analyze"


def enqueue_analysis(broker_url: str, queue: str, job_id: str) -> None:
    """Send the analysis task for a job whose row is already committed."""
    client = Celery("miner-client", broker=broker_url)
    client.conf.broker_connection_retry_on_startup = True
    with client.connection_for_write() as connection:
        client.send_task(ANALYZE_TASK, args=[job_id], queue=queue, connection=connection)


def ping_workers(broker_url: str, timeout: float = 2.0) -> list[str]:
    """Names of workers that answer a ping within the timeout."""
    client = Celery("miner-client", broker=broker_url)
    replies = client.control.ping(timeout=timeout) or []
    return [name for reply in replies for name in reply]


def queue_consumers(broker_url: str, queue: str, timeout: float = 2.0) -> list[str]:
    """Names of workers that answer within the timeout and consume `queue`."""
    client = Celery("miner-client", broker=broker_url)
    replies = client.control.inspect(timeout=timeout).active_queues() or {}
    return [name for name, queues in replies.items() if any(q.get("name") == queue for q in queues or ())]
