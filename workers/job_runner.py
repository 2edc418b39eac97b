"""Turn a function of a claimed job into a reliable Celery task that takes only a job id.

The wrapper claims the job (so duplicates run once), heartbeats while it runs (so a dead
worker's job is reclaimed after the lease), retries with backoff and jitter while a
dependency is down (the job goes back to ``queued``, never to a false success), and records
the outcome. Unexpected errors fail the job with a generic message; details go to the log.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Task
from celery.exceptions import Retry, SoftTimeLimitExceeded

from config import get_settings
from portcullis.errors import DependencyUnavailable
from portcullis.jobs import service as jobs
from portcullis.jobs.service import ClaimedJob
from workers.celery_app import celery_app

log = logging.getLogger(__name__)

MAX_DEPENDENCY_RETRIES = 60
MAX_BACKOFF_SECONDS = 600


class JobFailed(Exception):
    """A job's expected, reportable failure: its code and detail reach the job's ``error``."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


# A job's progress is written at most this often: a short job (a 1 MiB scan reports four
# steps within milliseconds) costs one write, not four; its outcome writes 100 anyway.
PROGRESS_EVERY_SECONDS = 0.25


class JobContext:
    def __init__(self, job: ClaimedJob) -> None:
        self.job = job
        self._reported_at: float | None = None

    @property
    def job_id(self) -> uuid.UUID:
        return self.job.id

    @property
    def tenant_id(self) -> uuid.UUID | None:
        return self.job.tenant_id

    def progress(self, percent: int) -> None:
        now = time.monotonic()
        if self._reported_at is not None and now - self._reported_at < PROGRESS_EVERY_SECONDS:
            return
        self._reported_at = now
        jobs.report_progress(self.job, percent)


def backoff_seconds(retries: int) -> float:
    """Exponential backoff with full jitter, capped."""
    return random.uniform(1, min(MAX_BACKOFF_SECONDS, 2 ** (retries + 1)))


@contextmanager
def _heartbeat(job: ClaimedJob) -> Iterator[None]:
    interval = max(1.0, get_settings().JOB_LEASE_SECONDS / 3)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                jobs.heartbeat(job)
            except Exception:  # noqa: BLE001 - a missed beat only shortens the lease
                log.warning("heartbeat for job %s failed", job.id)

    thread = threading.Thread(target=beat, name=f"heartbeat-{job.id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


JobFunction = Callable[[JobContext], dict[str, Any] | None]


def job_task(name: str, *, soft_time_limit: int, time_limit: int,
             **options: Any) -> Callable[[JobFunction], Task]:
    """Register ``fn(ctx) -> result`` as task ``name`` taking one argument, the job id."""

    def decorate(fn: JobFunction) -> Task:
        @celery_app.task(name=name, bind=True, acks_late=True, reject_on_worker_lost=True,
                         soft_time_limit=soft_time_limit, time_limit=time_limit,
                         max_retries=MAX_DEPENDENCY_RETRIES, **options)
        def run(self: Task, job_id: str) -> None:
            claimed = jobs.claim(uuid.UUID(job_id))
            if claimed is None:
                left = jobs.lease_left(uuid.UUID(job_id))
                if left is None or self.request.retries >= MAX_DEPENDENCY_RETRIES:
                    return  # finished already (or, at worst, left to the sweeper)
                # Running under a live lease: elsewhere, or on a worker that died; look
                # again once the lease has run out.
                raise self.retry(countdown=left + 1)
            try:
                with _heartbeat(claimed):
                    result = fn(JobContext(claimed))
            except DependencyUnavailable as exc:
                delay = backoff_seconds(self.request.retries)
                if self.request.retries >= MAX_DEPENDENCY_RETRIES:
                    jobs.fail(claimed, "dependency_unavailable", f"{exc.dependency} is down")
                    return
                jobs.release_for_retry(claimed, datetime.now(UTC) + timedelta(seconds=delay))
                log.warning("job %s waits for %s (retry in %.0fs)", job_id, exc.dependency,
                            delay)
                raise self.retry(countdown=delay, exc=exc) from None
            except JobFailed as exc:
                jobs.fail(claimed, exc.code, exc.detail)
            except SoftTimeLimitExceeded:
                jobs.fail(claimed, "timeout", "the job took longer than its time limit")
            except Retry:
                raise
            except Exception:
                log.exception("job %s (%s) failed unexpectedly", job_id, claimed.kind)
                jobs.fail(claimed, "internal_error", "the job failed unexpectedly")
            else:
                jobs.succeed(claimed, result)

        return run

    return decorate
