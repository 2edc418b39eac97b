"""SIEM webhook delivery on the ``alerts`` queue."""

from __future__ import annotations

import uuid

from portcullis.alerts import service
from workers.celery_app import celery_app


@celery_app.task(name="tasks.alerts.deliver_alert", acks_late=True, soft_time_limit=30,
                 time_limit=45)
def deliver_alert(alert_id: str) -> str:
    """One attempt; failures are rescheduled in the outbox row, not in the broker."""
    return service.deliver(uuid.UUID(alert_id))


@celery_app.task(name="tasks.alerts.sweep_alerts", acks_late=True, soft_time_limit=50,
                 time_limit=60)
def sweep_alerts() -> int:
    return service.sweep()
