"""Virus scan and type check of uploads on the ``scan`` queue; stored files scanned again
(a job, with progress, that beat queues when files are due)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from portcullis.errors import DependencyUnavailable
from portcullis.storage import service as storage
from workers.celery_app import celery_app
from workers.job_runner import JobContext, job_task

log = logging.getLogger(__name__)


@job_task("tasks.scan.scan_upload", soft_time_limit=600, time_limit=660)
def scan_upload(ctx: JobContext) -> dict[str, Any]:
    assert ctx.tenant_id is not None
    return storage.scan_upload(ctx.tenant_id, uuid.UUID(ctx.job.args["upload_id"]), ctx.progress)


@celery_app.task(name="tasks.scan.settle_failed_scans", soft_time_limit=50, time_limit=60,
                 acks_late=True)
def settle_failed_scans() -> int:
    """Uploads whose scan job failed for good end ``rejected`` (``scan_failed``)."""
    return storage.settle_failed_scans()


@job_task(storage.RESCAN_TASK, soft_time_limit=3300, time_limit=3600)
def rescan_files(ctx: JobContext) -> dict[str, Any]:
    """Due files scanned again, in batches; clamd or storage down: retried with backoff."""
    return storage.rescan_job(ctx.job.args, ctx.progress)


@celery_app.task(name="tasks.scan.schedule_rescan", soft_time_limit=50, time_limit=60,
                 acks_late=True, reject_on_worker_lost=True)
def schedule_rescan(tenant_id: str | None = None) -> str | None:
    """Beat: queue a rescan job when files are due and none is queued or running (its id).
    ``tenant_id`` limits it to one tenant's files, for a test or a replay; beat sends none.
    clamd or the database down: nothing queued, the next run asks again."""
    try:
        job_id = storage.schedule_rescan(uuid.UUID(tenant_id) if tenant_id else None)
    except DependencyUnavailable as exc:
        log.warning("rescan not scheduled: %s is unavailable", exc.dependency)
        return None
    return str(job_id) if job_id else None
