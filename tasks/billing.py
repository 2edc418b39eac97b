"""Billing on the ``billing`` queue: the monthly run (a job, with progress) and beat's daily
usage collection, overdue check and catch-up of a missed monthly run.

Beat's tasks are idempotent and catch up by themselves (a missed day is recorded by the next
collection, a missed run by the next day's catch-up), so they carry no job row; while the
database is down they retry with backoff.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from portcullis.billing import service as billing
from portcullis.errors import DependencyUnavailable
from workers.celery_app import celery_app
from workers.job_runner import JobContext, job_task

_BEAT = {"acks_late": True, "reject_on_worker_lost": True,
         "autoretry_for": (DependencyUnavailable,), "retry_backoff": True,
         "retry_backoff_max": 600, "max_retries": 8}


@job_task(billing.RUN_TASK, soft_time_limit=3300, time_limit=3600)
def run_monthly_billing(ctx: JobContext) -> dict[str, Any]:
    return billing.run_job(ctx.job_id, ctx.job.args, ctx.progress)


@celery_app.task(name="tasks.billing.collect_usage", soft_time_limit=1700, time_limit=1800,
                 **_BEAT)
def collect_usage(today: str | None = None) -> list[str]:
    """The day that just ended, and any day missed since the last one recorded (``today``,
    an ISO date, for a test or a replay; beat sends none)."""
    day = date.fromisoformat(today) if today else None
    return [d.isoformat() for d in billing.collect_missing_usage(day)]


@celery_app.task(name="tasks.billing.check_overdue", soft_time_limit=1700, time_limit=1800,
                 **_BEAT)
def check_overdue(now: str | None = None) -> dict[str, int]:
    result = billing.check_overdue(_moment(now))
    return {"overdue": result.overdue, "suspended": result.suspended,
            "reactivated": result.reactivated}


@celery_app.task(name="tasks.billing.bill_previous_month", soft_time_limit=3300,
                 time_limit=3600, **_BEAT)
def bill_previous_month(now: str | None = None) -> dict[str, Any] | None:
    result = billing.ensure_previous_period_billed(_moment(now))
    return None if result is None else {"period": result.period, "issued": result.issued}


def _moment(now: str | None) -> datetime | None:
    """An ISO time with its offset (a test's or a replay's "now"); beat sends none."""
    if now is None:
        return None
    moment = datetime.fromisoformat(now)
    if moment.utcoffset() is None:
        raise ValueError("now needs a UTC offset")
    return moment
