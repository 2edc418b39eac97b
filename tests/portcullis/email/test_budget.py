"""The per-recipient cap on token emails counts each job once and each kind apart: a job
retried while SMTP is down still delivers its one mail, and five anonymous reset requests
do not hold back an invitation or a verification email."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from limits import parse
from sqlalchemy import select

from config import get_settings
from devstack.mailsink import MailSink
from devstack.process import free_port
from portcullis.accounts.models import Role
from portcullis.db import tenant_session
from portcullis.email import service as emails
from portcullis.email.messages import INVITATION, RESET_PASSWORD, VERIFY_EMAIL, Kind
from portcullis.jobs.models import Job
from portcullis.redis_client import get_redis
from tests.support.factories import make_member, make_tenant
from tests.support.web import make_client
from tests.support.worker import CeleryProcess, start_worker

pytestmark = pytest.mark.usefixtures("stack")

LIMIT = "2/hour"  # the worker's EMAIL_RECIPIENT_LIMIT below: three attempts would spend it


def _remaining(address: str, kind: Kind, limit: str) -> int:
    stats = emails._recipient_limiter(get_settings().REDIS_URL).get_window_stats(
        parse(limit), "portcullis-email", emails.recipient_key(address, kind))
    return stats.remaining


@pytest.fixture
def smtp_down_worker(shared_worker_paused: None,
                     tmp_path: Path) -> Iterator[tuple[CeleryProcess, MailSink]]:
    """The only worker, sending to a mail sink that is not listening yet."""
    sink = MailSink(tmp_path / "sink", port=free_port())
    worker = start_worker(tmp_path / "worker.log", "smtp-down", env={
        "SMTP_URL": sink.url, "EMAIL_RECIPIENT_LIMIT": LIMIT})
    try:
        yield worker, sink
    finally:
        worker.stop(timeout=30)
        sink.stop()


def _job(tenant_id: uuid.UUID, kind: str) -> Job | None:
    with tenant_session(tenant_id) as db:
        return db.scalars(select(Job).where(Job.kind == kind)).first()


def test_a_retried_reset_email_is_delivered_once_and_counted_once(
        app: Flask, smtp_down_worker: tuple[CeleryProcess, MailSink]) -> None:
    worker, sink = smtp_down_worker
    member = make_member(make_tenant(), Role.viewonly)
    response = make_client(app).post("/api/v1/auth/password/forgot", json={"email": member.email})
    assert response.status_code == 202, response.get_json()

    deadline = time.monotonic() + 90  # SMTP refuses: the job retries with backoff
    while worker.log.read_text(errors="replace").count("waits for smtp") < 3:
        job = _job(member.tenant_id, "email.reset_password")
        assert job is None or job.status not in {"succeeded", "failed"}, job.result
        assert time.monotonic() < deadline, worker.tail()
        time.sleep(0.2)
    sink.start()  # the outage ends
    message = sink.wait_for(lambda m: member.email in str(m["To"]), timeout=90)
    assert "Reset your Portcullis password" in str(message["Subject"])

    deadline = time.monotonic() + 30
    while (job := _job(member.tenant_id, "email.reset_password")) is None or \
            job.status != "succeeded":
        assert time.monotonic() < deadline, job and (job.status, job.error)
        time.sleep(0.2)
    assert job.result == {"sent": True}
    assert sum(member.email in str(m["To"]) for m in sink.messages) == 1
    assert _remaining(member.email, RESET_PASSWORD, LIMIT) == 1  # counted once


def test_one_job_is_counted_once_however_often_it_asks() -> None:
    address = f"budget-{uuid.uuid4().hex[:10]}@example.com"
    job_id = uuid.uuid4()
    for _ in range(8):
        assert emails.recipient_allowed(address, VERIFY_EMAIL, job_id)
    limit = get_settings().EMAIL_RECIPIENT_LIMIT
    assert _remaining(address, VERIFY_EMAIL, limit) == parse(limit).amount - 1


def test_a_refused_job_stays_refused_on_a_retry() -> None:
    address = f"budget-{uuid.uuid4().hex[:10]}@example.com"
    amount = parse(get_settings().EMAIL_RECIPIENT_LIMIT).amount
    for _ in range(amount):
        assert emails.recipient_allowed(address, RESET_PASSWORD, uuid.uuid4())
    refused = uuid.uuid4()
    assert not emails.recipient_allowed(address, RESET_PASSWORD, refused)
    assert not emails.recipient_allowed(address, RESET_PASSWORD, refused)


def test_each_kind_of_email_has_its_own_budget() -> None:
    address = f"budget-{uuid.uuid4().hex[:10]}@example.com"
    amount = parse(get_settings().EMAIL_RECIPIENT_LIMIT).amount
    for _ in range(amount):  # say, anonymous /password/forgot requests for the address
        assert emails.recipient_allowed(address, RESET_PASSWORD, uuid.uuid4())
    assert not emails.recipient_allowed(address, RESET_PASSWORD, uuid.uuid4())
    assert emails.recipient_allowed(address, INVITATION, uuid.uuid4())
    assert emails.recipient_allowed(address, VERIFY_EMAIL, uuid.uuid4())


def test_budget_keys_name_no_address_and_no_plain_digest() -> None:
    """A keyed digest: hashing a list of likely addresses does not find the key's owner."""
    import hashlib

    address = f"budget-{uuid.uuid4().hex[:10]}@example.com"
    assert emails.recipient_allowed(address, INVITATION, uuid.uuid4())
    plain = hashlib.sha256(address.encode()).hexdigest()[:32]
    keys = [k.decode(errors="replace") for k in get_redis().scan_iter(count=1000)]
    assert any(emails.recipient_key(address, INVITATION) in k for k in keys)
    assert not any(address in k or plain in k for k in keys)
