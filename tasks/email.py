"""Every email, on the ``email`` queue: one send task, whatever the kind."""

from __future__ import annotations

from typing import Any

import portcullis.accounts.mail
import portcullis.billing.mail  # noqa: F401 - registers billing's email source
from portcullis.email import service as email
from workers.job_runner import JobContext, job_task


def _send(ctx: JobContext) -> dict[str, Any]:
    assert ctx.tenant_id is not None
    return email.deliver(ctx.tenant_id, ctx.job.args, ctx.job_id)


send = job_task(email.SEND_TASK, soft_time_limit=60, time_limit=90)(_send)

# Jobs queued before the email domain existed name this task; the sweeper resends a queued
# job by its stored task name, so the old name stays registered until none is left.
send_account_email = job_task("tasks.email.send_account_email", soft_time_limit=60,
                              time_limit=90)(_send)
