"""The Celery app: reliability settings, explicit queues and routes, one place.

acks_late + reject_on_worker_lost: a message is acknowledged only after its task ends, so a
worker that dies hands it back. Prefetch 1 keeps long tasks from hoarding messages. The
visibility timeout is longer than any task's hard time limit, so a slow task is never
delivered twice while it runs. JSON only: no pickle from the broker.

A worker must not die of a broker restart: a channel the reconnect left half closed raises a
connection error, which Celery handles, not an AttributeError (``workers.broker``); and a
consumer bootstep touches the liveness file while it consumes (``workers.liveness``).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import beat_init, celeryd_init, setup_logging, worker_process_init

import portcullis.models  # noqa: F401 - every table, so foreign keys resolve
from config import Settings, get_settings
from portcullis.jobs.queue import transport_config
from portcullis.observability import configure_logging, configure_sentry
from workers.broker import install as install_broker_fix

TASK_MODULES = [
    "tasks.maintenance", "tasks.email", "tasks.alerts", "tasks.exports", "tasks.scan",
    "tasks.files", "tasks.billing", "tasks.sftp",
]

LONGEST_TASK_SECONDS = 3600


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        **transport_config(settings),
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_soft_shutdown_timeout": 30.0,
        "worker_enable_soft_shutdown_on_idle": True,
        "worker_hijack_root_logger": False,
        "task_soft_time_limit": 240,
        "task_time_limit": 300,
        "task_track_started": True,
        "imports": TASK_MODULES,
        # Beat: celery-redbeat keeps the schedule in Redis and holds a lock, so a second
        # beat waits instead of sending every entry twice; workers.beat makes it survive a
        # Redis that goes away or comes back empty.
        "beat_scheduler": "workers.beat:BeatScheduler",
        "redbeat_redis_url": settings.REDIS_URL,
        "redbeat_key_prefix": "portcullis:redbeat",
        "redbeat_lock_key": "portcullis:redbeat::lock",
        "redbeat_lock_timeout": 30,
        "redbeat_redis_options": {"socket_connect_timeout": 3, "socket_timeout": 10,
                                  "retry_on_timeout": True},
        "beat_max_loop_interval": 5,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
    }


def create_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    install_broker_fix()
    app = Celery("portcullis")
    app.conf.update(celery_config(settings))
    from beat_schedule import beat_schedule
    from workers.liveness import ConsumerLiveness

    app.conf.beat_schedule = beat_schedule(settings)
    app.steps["consumer"].add(ConsumerLiveness)
    return app


celery_app = create_celery()


@setup_logging.connect
def _configure_logging(**_: Any) -> None:
    """Our scrubbing log handlers instead of Celery's, when a worker or beat sets up logging
    (before Celery redirects stdout and stderr to the log), never on import."""
    configure_logging()


@celeryd_init.connect
def _configure_worker(**_: Any) -> None:
    """Sentry for a worker, when a worker starts (never on import)."""
    configure_logging()
    configure_sentry("worker")


@beat_init.connect
def _configure_beat(**_: Any) -> None:
    configure_sentry("beat")


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    """A forked child must not share its parent's database connections."""
    from portcullis.db.engine import dispose_engines

    dispose_engines()
