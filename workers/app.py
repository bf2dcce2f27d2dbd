"""The Celery app. Settings are read here, at worker start; unset URLs mean embedded servers."""

from __future__ import annotations

from celery import Celery

from miner.embedded import resolve_urls
from miner.settings import Settings

settings = Settings()
# The worker process holds handles on embedded servers (if any) for its whole life.
database_url, broker_url, _embedded = resolve_urls(settings.database_url, settings.broker_url, settings.home)

app = Celery("miner", broker=broker_url, include=["workers.tasks"])
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    task_default_queue=settings.queue,
    worker_hijack_root_logger=False,
)
