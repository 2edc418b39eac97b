"""SFTP accounts on the ``sftp`` queue: provisioning, password rotation and deletion, each
a job that brings SFTPGo to the state the database says (safe to repeat). SFTPGo down is
retried with backoff by the job runner; a refusal for good fails the job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portcullis.sftp import service as sftp
from workers.job_runner import JobContext, JobFailed, job_task

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
