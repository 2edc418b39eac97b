"""Account emails on the ``email`` queue: verification, invitation, reset, security notices."""

from __future__ import annotations

from typing import Any

from portcullis.accounts import emails
from workers.job_runner import JobContext, job_task


@job_task("tasks.email.send_account_email", soft_time_limit=60, time_limit=90)
def send_account_email(ctx: JobContext) -> dict[str, Any]:
    assert ctx.tenant_id is not None
    return emails.deliver(ctx.tenant_id, ctx.job.args, ctx.job_id)
