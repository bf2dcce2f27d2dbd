"""The Celery app and beat schedule. Settings are read here, at worker start; unset URLs mean
embedded servers."""

from __future__ import annotations

from celery import Celery
from celery.schedules import crontab

from miner.embedded import resolve_urls
from miner.settings import Settings

settings = Settings()
# The worker process holds handles on embedded servers (if any) for its whole life.
database_url, broker_url, _embedded = resolve_urls(settings.database_url, settings.broker_url, settings.home)
nightly_hour, nightly_minute = (int(part) for part in settings.nightly_at.split(":"))

# workers.heartbeat: workers beat in Postgres and re-drive the jobs of dead ones (issue 13.6).
app = Celery("miner", broker=broker_url, include=["workers.tasks", "workers.heartbeat"])
app.conf.update(
    # A task is acknowledged after it ran, and given back if its worker dies: steps are idempotent.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    # Redis hands a dead worker's unacknowledged task to another after the visibility timeout;
    # sweep for such tasks often enough that the timeout is what decides.
    broker_transport_options={"visibility_timeout": settings.visibility_timeout,
                              "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 5)),
                              "unacked_restore_throttle": 1},
    task_default_queue=settings.queue,
    worker_hijack_root_logger=False,
    timezone="UTC",
    beat_schedule={
        "nightly-aggregation": {
            "task": "miner.nightly",
            "schedule": crontab(hour=nightly_hour, minute=nightly_minute),
            "options": {"queue": settings.queue},
        },
        "stalled-job-watchdog": {
            "task": "miner.watchdog",
            "schedule": max(30, settings.stall_seconds // 3),
            "options": {"queue": settings.queue},
        },
    },
)
