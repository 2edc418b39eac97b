"""Exports on the ``exports`` queue."""

from __future__ import annotations

from typing import Any

from portcullis.exports import service as exports
from workers.job_runner import JobContext, job_task


@job_task("tasks.exports.export_audit_events", soft_time_limit=1800, time_limit=1900)
def export_audit_events(ctx: JobContext) -> dict[str, Any]:
    assert ctx.tenant_id is not None
    return exports.run(ctx.tenant_id, ctx.job_id, ctx.job.args, ctx.progress)
