"""File housekeeping: the hourly lifecycle sweep."""

from __future__ import annotations

from portcullis.storage import service as storage
from workers.celery_app import celery_app


@celery_app.task(name="tasks.files.expire_files", acks_late=True, soft_time_limit=1500,
                 time_limit=1600)
def expire_files() -> int:
    """Delete files older than their bucket's lifecycle rule."""
    return storage.expire_files()
