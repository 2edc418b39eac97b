"""Housekeeping that beat drives on the default queue."""

from __future__ import annotations

from portcullis.jobs import service as jobs
from workers.celery_app import celery_app


@celery_app.task(name="tasks.maintenance.requeue_stuck_jobs", soft_time_limit=50,
                 time_limit=60, acks_late=True)
def requeue_stuck_jobs() -> int:
    """Resend jobs the broker lost or whose worker died."""
    return jobs.requeue_stuck()
