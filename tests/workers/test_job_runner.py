"""Jobs run by a real Celery worker over the real broker, outcomes recorded in the database."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from portcullis.db import system_session, tenant_session
from portcullis.jobs.models import Job
from portcullis.jobs.service import create_job
from tests.support.factories import make_tenant

pytestmark = pytest.mark.usefixtures("worker")


def enqueue(task: str, args: dict[str, Any] | None = None) -> uuid.UUID:
    tenant = make_tenant()
    with tenant_session(tenant) as db:
        return create_job(db, tenant_id=tenant, kind="sample", task_name=task, args=args).id


def load(job_id: uuid.UUID) -> Job:
    with system_session() as db:
        job = db.get(Job, job_id)
        assert job is not None
        return job


def wait_finished(job_id: uuid.UUID, timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = load(job_id)
        if job.status in ("succeeded", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {load(job_id).status} after {timeout}s")


def test_job_runs_and_reports_progress() -> None:
    job_id = enqueue("tasks.default.sample_steps", {"steps": 5, "pause": 0.3})
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = load(job_id)
        seen.add(job.progress)
        if job.status == "succeeded":
            break
        time.sleep(0.05)
    assert job.status == "succeeded"
    assert job.progress == 100
    assert job.result == {"steps": 5, "attempt": 1}
    assert job.started_at and job.finished_at and job.started_at <= job.finished_at
    assert len({p for p in seen if 0 < p < 100}) >= 2, seen


def test_expected_failure_is_recorded_with_its_code() -> None:
    job = wait_finished(enqueue("tasks.default.sample_fail", {"mode": "expected"}))
    assert job.status == "failed"
    assert job.error == {"code": "sample_failed", "detail": "failed as asked"}


def test_unexpected_failure_is_generic() -> None:
    job = wait_finished(enqueue("tasks.default.sample_fail", {"mode": "crash"}))
    assert job.status == "failed"
    assert job.error == {"code": "internal_error", "detail": "the job failed unexpectedly"}
    assert "secret-internal-detail" not in str(job.error)


def test_dependency_down_is_retried_not_failed() -> None:
    job = wait_finished(enqueue("tasks.default.sample_fail", {"mode": "dependency"}), 90)
    assert job.status == "succeeded"
    assert job.result == {"attempt": 2}


def test_duplicate_message_runs_the_job_once() -> None:
    from portcullis.jobs.dispatch import send_now

    job_id = enqueue("tasks.default.sample_steps", {"steps": 2, "pause": 0.5})
    send_now("tasks.default.sample_steps", str(job_id))
    send_now("tasks.default.sample_steps", str(job_id))
    job = wait_finished(job_id)
    time.sleep(1.5)
    assert load(job_id).attempts == 1
    assert job.result == {"steps": 2, "attempt": 1}
