"""Virus scan and type check of uploads on the ``scan`` queue."""

from __future__ import annotations

import uuid
from typing import Any

from portcullis.storage import service as storage
from workers.celery_app import celery_app
from workers.job_runner import JobContext, job_task


@job_task("tasks.scan.scan_upload", soft_time_limit=600, time_limit=660)
def scan_upload(ctx: JobContext) -> dict[str, Any]:
    assert ctx.tenant_id is not None
    return storage.scan_upload(ctx.tenant_id, uuid.UUID(ctx.job.args["upload_id"]), ctx.progress)


@celery_app.task(name="tasks.scan.settle_failed_scans", soft_time_limit=50, time_limit=60,
                 acks_late=True)
def settle_failed_scans() -> int:
    """Uploads whose scan job failed for good end ``rejected`` (``scan_failed``)."""
    return storage.settle_failed_scans()
