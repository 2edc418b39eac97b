"""Jobs that exist only for tests: they exercise the runner, not any feature."""

from __future__ import annotations

import time
from typing import Any

from portcullis.errors import DependencyUnavailable
from workers.celery_app import celery_app
from workers.job_runner import JobContext, JobFailed, job_task


@job_task("tasks.default.sample_steps", soft_time_limit=60, time_limit=90)
def sample_steps(ctx: JobContext) -> dict[str, Any]:
    """Sleep in steps, reporting progress; result records which attempt finished."""
    steps = int(ctx.job.args.get("steps", 3))
    pause = float(ctx.job.args.get("pause", 0.1))
    for step in range(steps):
        time.sleep(pause)
        ctx.progress(int((step + 1) * 100 / steps) - 1)
    return {"steps": steps, "attempt": ctx.job.attempts}


@job_task("tasks.default.sample_fail", soft_time_limit=10, time_limit=20)
def sample_fail(ctx: JobContext) -> dict[str, Any]:
    if ctx.job.args.get("mode") == "expected":
        raise JobFailed("sample_failed", "failed as asked")
    if ctx.job.args.get("mode") == "dependency" and ctx.job.attempts < 2:
        raise DependencyUnavailable("sample", "down for the first attempt")
    if ctx.job.args.get("mode") == "dependency":
        return {"attempt": ctx.job.attempts}
    raise RuntimeError("secret-internal-detail")


@celery_app.task(name="tasks.default.sample_noop", acks_late=True, soft_time_limit=10,
                 time_limit=20)
def sample_noop() -> None:
    """A bare Celery task that does nothing: the broker's own cost (``bench broker``)."""
