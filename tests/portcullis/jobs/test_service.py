"""Job bookkeeping without a worker: after-commit sending, claims, the sweeper."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from portcullis.cli import main
from portcullis.db import system_session, tenant_session
from portcullis.jobs import dispatch
from portcullis.jobs import service as jobs
from portcullis.jobs.models import Job, JobStatus
from tests.support.factories import make_tenant

pytestmark = pytest.mark.usefixtures("stack")


@pytest.fixture
def sent() -> Iterator[list[tuple[str, str]]]:
    calls: list[tuple[str, str]] = []
    with mock.patch.object(dispatch, "send_now",
                           side_effect=lambda name, job_id: calls.append((name, job_id)) or True):
        yield calls


def _create(tenant: uuid.UUID) -> uuid.UUID:
    with tenant_session(tenant) as db:
        return jobs.create_job(db, tenant_id=tenant, kind="k", task_name="tasks.default.x").id


def _set(job_id: uuid.UUID, **values: object) -> None:
    with system_session() as db:
        db.execute(update(Job).where(Job.id == job_id).values(**values))


def test_task_is_sent_only_after_commit(sent: list[tuple[str, str]]) -> None:
    tenant = make_tenant()
    with tenant_session(tenant) as db:
        job = jobs.create_job(db, tenant_id=tenant, kind="k", task_name="tasks.default.x")
        assert sent == []  # still inside the transaction
    assert sent == [("tasks.default.x", str(job.id))]


def test_rolled_back_job_sends_nothing(sent: list[tuple[str, str]]) -> None:
    tenant = make_tenant()
    with pytest.raises(RuntimeError), tenant_session(tenant) as db:
        jobs.create_job(db, tenant_id=tenant, kind="k", task_name="tasks.default.x")
        raise RuntimeError("abort")
    assert sent == []


def test_claim_is_exclusive_until_the_lease_expires(sent: list[tuple[str, str]]) -> None:
    job_id = _create(make_tenant())
    first = jobs.claim(job_id)
    assert first is not None
    assert jobs.claim(job_id) is None  # alive elsewhere
    _set(job_id, heartbeat_at=datetime.now(UTC) - timedelta(minutes=5))
    reclaimed = jobs.claim(job_id)
    assert reclaimed is not None and reclaimed.attempts == 2
    # The first worker, back from the dead, can no longer finish or fail the job.
    jobs.fail(first, "internal_error", "late")
    jobs.succeed(first, {"late": True})
    with system_session() as db:
        assert db.get(Job, job_id).status == JobStatus.running  # type: ignore[union-attr]
    jobs.succeed(reclaimed, {"ok": True})
    assert jobs.claim(job_id) is None  # finished jobs never run again


def test_sweeper_resends_unsent_and_orphaned_jobs(sent: list[tuple[str, str]]) -> None:
    tenant = make_tenant()
    never_sent, orphaned, fresh = _create(tenant), _create(tenant), _create(tenant)
    old = datetime.now(UTC) - timedelta(minutes=10)
    _set(never_sent, created_at=old, sent_at=None)
    jobs.claim(orphaned)
    _set(orphaned, heartbeat_at=old)
    sent.clear()
    jobs.requeue_stuck()
    resent = {job_id for _, job_id in sent}
    assert {str(never_sent), str(orphaned)} <= resent
    assert str(fresh) not in resent
    with system_session() as db:
        assert db.get(Job, orphaned).status == "queued"
    sent.clear()
    jobs.requeue_stuck()  # sent_at was refreshed: no storm on the next sweep
    assert not {str(never_sent), str(orphaned)} & {job_id for _, job_id in sent}


def test_job_that_keeps_killing_workers_fails(sent: list[tuple[str, str]]) -> None:
    job_id = _create(make_tenant())
    jobs.claim(job_id)
    _set(job_id, attempts=5, heartbeat_at=datetime.now(UTC) - timedelta(minutes=10))
    jobs.requeue_stuck()
    with system_session() as db:
        job = db.get(Job, job_id)
        assert job.status == "failed" and job.error["code"] == "worker_lost"


def test_cli_requeue_stuck(sent: list[tuple[str, str]]) -> None:
    job_id = _create(make_tenant())
    _set(job_id, created_at=datetime.now(UTC) - timedelta(minutes=10))
    result = CliRunner().invoke(main, ["jobs", "requeue-stuck"])
    assert result.exit_code == 0
    assert "requeued" in result.output
    assert str(job_id) in {j for _, j in sent}


@pytest.mark.usefixtures("stack")
def test_the_producer_never_waits_on_task_results() -> None:
    """The job row is the result: a send subscribes to nothing in the result backend, so
    no dropped ``AsyncResult`` can run the backend's 20 s reconnect loop while Redis is
    down (tests/workers/test_reliability.py has the outage itself)."""
    from portcullis.jobs.queue import producer

    assert dispatch.send_now("tasks.default.sample_steps", str(uuid.uuid4()))
    backend = producer().backend
    pending, weak = backend._pending_results
    assert not pending and not weak
    assert getattr(backend.result_consumer, "_pubsub", None) is None
