"""SFTP accounts on the ``sftp`` queue: provisioning, password rotation and deletion, each
a job that brings SFTPGo to the state the database says (safe to repeat; SFTPGo down is
retried with backoff by the job runner, a refusal for good fails the job), and beat's
sweeps: drop-box intake, SFTPGo status while a tenant is suspended, drift repair."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from portcullis.errors import DependencyUnavailable
from portcullis.sftp import service as sftp
from workers.celery_app import celery_app
from workers.job_runner import JobContext, JobFailed, job_task

log = logging.getLogger(__name__)

Body = Callable[[Any, dict[str, Any]], dict[str, Any]]


def _run(body: Body, ctx: JobContext) -> dict[str, Any]:
    assert ctx.tenant_id is not None
    try:
        return body(ctx.tenant_id, ctx.job.args)
    except sftp.Failed as exc:
        raise JobFailed(exc.code, exc.detail) from None


@job_task(sftp.PROVISION_TASK, soft_time_limit=120, time_limit=150)
def provision_account(ctx: JobContext) -> dict[str, Any]:
    return _run(sftp.provision_job, ctx)


@job_task(sftp.ROTATE_TASK, soft_time_limit=120, time_limit=150)
def rotate_password(ctx: JobContext) -> dict[str, Any]:
    return _run(sftp.rotate_job, ctx)


@job_task(sftp.DELETE_TASK, soft_time_limit=600, time_limit=660)
def delete_account(ctx: JobContext) -> dict[str, Any]:
    return _run(sftp.delete_job, ctx)


# Beat's sweeps: each run starts over from the database, so a run that meets storage or
# SFTPGo down just stops; the next one (seconds later) goes on. No retries to pile up.
_SWEEP = {"acks_late": True, "reject_on_worker_lost": True}


def _sweep(body: Callable[[], Any]) -> Any:
    try:
        return body()
    except DependencyUnavailable as exc:
        log.warning("sweep stopped: %s is unavailable", exc.dependency)
        return {"stopped": exc.dependency}


@celery_app.task(name="tasks.sftp.ingest_drop_boxes", soft_time_limit=240, time_limit=300,
                 **_SWEEP)
def ingest_drop_boxes() -> Any:
    """Objects dropped under the accounts' prefixes become uploads, each version once."""
    return _sweep(lambda: asdict(sftp.sweep_drop_boxes()))


@celery_app.task(name="tasks.sftp.sync_status", soft_time_limit=50, time_limit=60, **_SWEEP)
def sync_status() -> Any:
    """SFTPGo users disabled while their tenant is suspended, enabled again after."""
    return _sweep(sftp.sync_status)


@celery_app.task(name="tasks.sftp.repair_drift", soft_time_limit=500, time_limit=540,
                 **_SWEEP)
def repair_drift() -> Any:
    """What changed in SFTPGo behind the database's back is put right."""
    return _sweep(lambda: asdict(sftp.repair_drift()))
