"""The broker as the domain sees it: queues, routes and a producer that sends tasks by name.

The web process and the CLI send tasks through this producer and never import the worker's
Celery app (``workers.celery_app``), which takes its queues and routes from here so the two
cannot disagree. Building the producer configures nothing else.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from config import Settings, get_settings

QUEUES = ("default", "scan", "sftp", "billing", "alerts", "email", "exports")

# Task name prefix → queue. Task modules are named after their queue.
ROUTES = {f"tasks.{queue}.*": {"queue": queue} for queue in QUEUES if queue != "default"}

_lock = threading.Lock()
_producer: Celery | None = None


def is_amqp(broker_url: str) -> bool:
    return broker_url.split("://", 1)[0] in ("amqp", "amqps", "pyamqp")


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """Redis: a visibility timeout longer than any task (an unacknowledged message is
    delivered again after it). RabbitMQ: publisher confirms, so a send returns only once the
    broker has the message (durable queues, persistent messages: a restart keeps it), and
    a short connect timeout so a send to a broker that is down fails fast to the sweeper."""
    if is_amqp(settings.CELERY_BROKER_URL):
        return {"confirm_publish": True, "connect_timeout": 3}
    return {
        "visibility_timeout": max(settings.BROKER_VISIBILITY_TIMEOUT, 10),
        "socket_connect_timeout": 3,
        "socket_timeout": 10,
        "retry_on_timeout": True,
    }


def transport_config(settings: Settings) -> dict[str, Any]:
    """What a producer and a worker must agree on: broker, serialisation, queues, routes."""
    return {
        "broker_url": settings.CELERY_BROKER_URL,
        "result_backend": settings.REDIS_URL,
        "result_expires": 86400,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": "default",
        "task_queues": [Queue(q, Exchange(q), routing_key=q, durable=True) for q in QUEUES],
        "task_routes": ROUTES,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 3,
        "broker_transport_options": broker_transport_options(settings),
        "result_backend_transport_options": {"socket_connect_timeout": 3, "socket_timeout": 10},
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0.1,
                                      "interval_step": 0.5, "interval_max": 1},
    }


def producer() -> Celery:
    """This process's producer, built on first use from the validated settings."""
    global _producer
    with _lock:
        if _producer is None:
            app = Celery("portcullis-producer", set_as_current=False)
            app.conf.update(transport_config(get_settings()))
            _producer = app
        return _producer


def reset_producer() -> None:
    """Forget the producer (tests that change settings; a forked child)."""
    global _producer, _lock
    _lock = threading.Lock()  # a child forked while another thread held it
    _producer = None


os.register_at_fork(after_in_child=reset_producer)
