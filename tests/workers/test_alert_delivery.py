"""SIEM alerts are delivered at least once and never lost: the receiver failing or down, a
worker killed mid-request, Redis down when the alert is raised. Retries keep the
webhook-id; a delivered alert is never sent again; an old one is given up; both outcomes are
audited. Only SIEM_WEBHOOK_URL is ever called."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import select, update

from config import get_settings
from devstack.siem_receiver import SiemReceiver, verify_signature
from devstack.stack import LocalStack
from portcullis.access_keys.service import create_operator_key
from portcullis.alerts import outbox, service
from portcullis.alerts.models import Alert, AlertStatus
from portcullis.alerts.service import AlertType, raise_alert
from portcullis.audit.models import AuditEvent, Severity
from portcullis.callers import Caller
from portcullis.db import system_session, tenant_session
from portcullis.jobs import dispatch
from tests.support.factories import make_tenant
from tests.support.worker import CeleryProcess, start_worker

pytestmark = pytest.mark.usefixtures("worker")

ALERT_FIELDS = {"id", "type", "occurred_at", "tenant_id", "severity", "summary", "actor", "ip",
                "details"}


@pytest.fixture
def siem(stack: LocalStack) -> Iterator[SiemReceiver]:
    receiver: SiemReceiver = stack["siem"]
    try:
        yield receiver
    finally:  # whatever a test did, the next one finds a healthy receiver
        receiver.set_failing(None)
        receiver.set_delay(0)
        if receiver._server is None:
            receiver.start()



@pytest.fixture
def only_the_siem_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every URL an in-process delivery requests; each must be SIEM_WEBHOOK_URL."""
    called: list[str] = []
    original = httpx.Client.send

    def send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        called.append(str(request.url))
        return original(self, request, **kwargs)

    monkeypatch.setattr(httpx.Client, "send", send)
    yield called
    assert called, "nothing was sent"
    assert set(called) == {get_settings().SIEM_WEBHOOK_URL}


# --- helpers -----------------------------------------------------------------------------


def _raise(tenant_id: uuid.UUID, n: int) -> uuid.UUID:
    """An alert raised as the application does: outbox row, task sent after commit."""
    with tenant_session(tenant_id) as db:
        return raise_alert(db, tenant_id, AlertType.mass_deletion, Severity.critical,
                           f"delivery test {n}", Caller.system(tenant_id), "192.0.2.10",
                           {"n": n, "password": "hunter2hunter2"})


def _outbox_row(tenant_id: uuid.UUID, *, age: timedelta = timedelta(0)) -> uuid.UUID:
    """An outbox row nobody was told about: only the calls a test makes will touch it."""
    alert_id = uuid.uuid4()
    created = datetime.now(UTC) - age
    payload = {"id": str(alert_id), "type": AlertType.new_ip.value,
               "occurred_at": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
               "tenant_id": str(tenant_id), "severity": "warning", "summary": "direct",
               "actor": {"type": "system", "id": None}, "ip": None, "details": {}}
    with system_session() as db:
        db.add(Alert(id=alert_id, tenant_id=tenant_id, type=payload["type"],
                     severity="warning", payload=payload, status=AlertStatus.pending,
                     attempts=0, next_attempt_at=datetime.now(UTC), created_at=created))
    return alert_id


def _row(alert_id: uuid.UUID) -> Alert:
    with system_session() as db:
        alert = db.get(Alert, alert_id)
        assert alert is not None
        return alert


def _wait_rows(ids: list[uuid.UUID], check: Any, timeout: float, what: str) -> list[Alert]:
    deadline = time.monotonic() + timeout
    while True:
        rows = [_row(i) for i in ids]
        if all(check(r) for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout}s: "
                                 f"{[(r.status, r.attempts, r.last_error) for r in rows]}")
        time.sleep(0.1)


def _wait_delivered(ids: list[uuid.UUID], timeout: float = 45) -> list[Alert]:
    return _wait_rows(ids, lambda r: r.status == AlertStatus.delivered, timeout, "delivered")


def _received(siem: SiemReceiver, alert_id: uuid.UUID, *, attempts: bool = False) -> list[Any]:
    items = siem.attempts if attempts else siem.deliveries
    return [d for d in items if d.id == str(alert_id)]


def _check_once(siem: SiemReceiver, alert_id: uuid.UUID) -> dict[str, Any]:
    """Delivered exactly once, signed; every attempt carried the same id and bytes."""
    [delivery] = _received(siem, alert_id)
    assert delivery.verified and delivery.status == 204
    assert verify_signature(siem.secret, delivery.id, delivery.timestamp, delivery.raw,
                            delivery.headers["webhook-signature"])
    assert set(delivery.body) == ALERT_FIELDS and delivery.body["id"] == str(alert_id)
    for attempt in _received(siem, alert_id, attempts=True):
        assert attempt.raw == delivery.raw and attempt.verified
    return delivery.body


def _audited(tenant_id: uuid.UUID, action: str, alert_id: uuid.UUID) -> list[AuditEvent]:
    with system_session() as db:
        return list(db.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == tenant_id, AuditEvent.action == action,
            AuditEvent.target_type == "alert", AuditEvent.target_id == str(alert_id))))


def _lease_seconds() -> float:
    return float(getattr(get_settings(), "JOB_LEASE_SECONDS", 60))


# --- the receiver in trouble ---------------------------------------------------------------


def test_receiver_failing_then_back(siem: SiemReceiver, beat: CeleryProcess) -> None:
    tenant = make_tenant("SIEM Failing Co")
    siem.set_failing(500)
    ids = [_raise(tenant, n) for n in range(3)]
    deadline = time.monotonic() + 40
    while min(len(_received(siem, i, attempts=True)) for i in ids) < 2:
        assert time.monotonic() < deadline, [r.attempts for r in map(_row, ids)]
        time.sleep(0.1)
    for alert in map(_row, ids):
        assert alert.status == AlertStatus.pending and alert.last_error == "HTTP 500"
    assert not any(_received(siem, i) for i in ids)

    siem.set_failing(None)
    rows = _wait_delivered(ids)
    for alert_id, alert in zip(ids, rows, strict=True):
        body = _check_once(siem, alert_id)
        assert body["tenant_id"] == str(tenant) and body["type"] == "alert.mass_deletion"
        assert body["details"]["n"] == ids.index(alert_id)
        assert "hunter2" not in str(body)
        assert len(_received(siem, alert_id, attempts=True)) == alert.attempts >= 3
        [event] = _audited(tenant, "alert.delivered", alert_id)
        assert event.actor_type == "system" and event.details["attempts"] == alert.attempts

    # Nothing sends a delivered alert again: not the sweeper, not a stray task.
    assert not set(service.due_alerts(10_000)) & set(ids)
    assert service.deliver(ids[0]) == "skipped"
    assert len(_received(siem, ids[0])) == 1


def test_receiver_down_then_back(siem: SiemReceiver, beat: CeleryProcess) -> None:
    tenant = make_tenant("SIEM Down Co")
    siem.stop()
    try:
        ids = [_raise(tenant, n) for n in range(2)]
        _wait_rows(ids, lambda r: r.attempts >= 2 and r.status == AlertStatus.pending,
                   40, "two failed attempts")
        assert all(_row(i).last_error for i in ids)
    finally:
        siem.start()  # the same port
    _wait_delivered(ids)
    for alert_id in ids:
        _check_once(siem, alert_id)
        assert len(_audited(tenant, "alert.delivered", alert_id)) == 1


@pytest.mark.usefixtures("shared_worker_paused")
def test_worker_killed_mid_delivery(siem: SiemReceiver, beat: CeleryProcess,
                                    tmp_path: Path) -> None:
    tenant = make_tenant("Killed Worker Co")
    first = start_worker(tmp_path / "first.log", "alerts-first", concurrency=1)
    second: CeleryProcess | None = None
    try:
        siem.set_delay(3)  # the request stays in flight
        alert_id = _raise(tenant, 0)
        _wait_rows([alert_id], lambda r: r.attempts == 1 and r.locked_until is not None, 20,
                   "claimed")
        time.sleep(1.0)  # the POST has left the worker
        siem.set_failing(500)  # ...and the answer it never reads will be a failure anyway
        first.kill()
        siem.wait_for(lambda d: d.id == str(alert_id), timeout=10, attempts=True)
        siem.set_failing(None)
        siem.set_delay(0)
        assert _row(alert_id).status == AlertStatus.pending  # nobody recorded an outcome

        second = start_worker(tmp_path / "second.log", "alerts-second", concurrency=1)
        [alert] = _wait_delivered([alert_id], timeout=_lease_seconds() + 40)
    finally:
        first.kill()
        if second is not None:
            second.stop(timeout=30)
    assert alert.attempts == 2
    _check_once(siem, alert_id)
    assert len(_received(siem, alert_id, attempts=True)) == 2
    assert len(_audited(tenant, "alert.delivered", alert_id)) == 1


def test_alert_raised_while_redis_is_down(app: Flask, stack: LocalStack, siem: SiemReceiver,
                                          beat: CeleryProcess) -> None:
    tenant = make_tenant("Broker Down Co")
    operator_key = create_operator_key("alert-delivery-tests")
    client = app.test_client()
    redis_server = stack["redis"]
    beat.wait_for_log("beat: Acquired lock")  # beat is connected when Redis goes away
    redis_server.stop()
    try:
        started = time.monotonic()
        response = client.post(f"/api/v1/operator/tenants/{tenant}/status",
                               headers={"Authorization": f"Bearer {operator_key}"},
                               json={"status": "suspended"})
        assert response.status_code == 200, response.get_json()
        assert time.monotonic() - started < 20, "the request must not hang on a dead broker"
        with system_session() as db:
            [alert] = db.scalars(select(Alert).where(
                Alert.tenant_id == tenant, Alert.type == "alert.tenant_suspended")).all()
        assert alert.status == AlertStatus.pending and alert.attempts == 0
        time.sleep(1)
        assert not _received(siem, alert.id, attempts=True)
    finally:
        redis_server.start()
    _wait_delivered([alert.id], timeout=60)
    body = _check_once(siem, alert.id)
    assert body["type"] == "alert.tenant_suspended" and body["tenant_id"] == str(tenant)
    assert body["actor"]["type"] == "operator"


# --- outcomes, audited --------------------------------------------------------------------


def test_old_alert_is_given_up_and_audited(siem: SiemReceiver,
                                           only_the_siem_url: list[str]) -> None:
    tenant = make_tenant("Given Up Co")
    retry_for = timedelta(seconds=get_settings().ALERT_RETRY_FOR_SECONDS)
    old = _outbox_row(tenant, age=retry_for + timedelta(minutes=1))
    young = _outbox_row(tenant, age=retry_for - timedelta(minutes=5))
    siem.set_failing(500)
    try:
        assert service.deliver(old) == "given_up"
        assert service.deliver(young) == "pending"  # not old enough: retried later
    finally:
        siem.set_failing(None)

    alert = _row(old)
    assert alert.status == AlertStatus.given_up and alert.attempts == 1
    assert alert.last_error == "HTTP 500"
    [event] = _audited(tenant, "alert.given_up", old)
    assert event.severity == "critical" and event.actor_type == "system"
    assert event.details["type"] == "alert.new_ip" and event.details["attempts"] == 1
    assert event.details["last_error"] == "HTTP 500"
    assert not _audited(tenant, "alert.delivered", old)
    assert [d.status for d in _received(siem, old, attempts=True)] == [500]
    assert not _received(siem, old)

    # Given up is final: neither the sweeper nor a stray task sends it again.
    assert old not in service.due_alerts(10_000)
    assert service.deliver(old) == "skipped"
    assert len(_received(siem, old, attempts=True)) == 1

    retry = _row(young)
    assert retry.status == AlertStatus.pending and retry.next_attempt_at > datetime.now(UTC)
    assert not _audited(tenant, "alert.given_up", young)
    with system_session() as db:  # due again now: this time it goes through
        db.execute(update(Alert).where(Alert.id == young)
                   .values(next_attempt_at=datetime.now(UTC)))
    assert service.deliver(young) == "delivered"
    _check_once(siem, young)


def test_delivered_alert_is_audited(siem: SiemReceiver, only_the_siem_url: list[str]) -> None:
    tenant = make_tenant("Delivered Co")
    alert_id = _outbox_row(tenant)
    assert service.deliver(alert_id) == "delivered"
    alert = _row(alert_id)
    assert alert.status == AlertStatus.delivered and alert.delivered_at is not None
    [event] = _audited(tenant, "alert.delivered", alert_id)
    assert event.actor_type == "system" and event.details["type"] == "alert.new_ip"
    assert event.details["attempts"] == 1
    body = _check_once(siem, alert_id)
    assert body == alert.payload


def test_same_alert_sent_twice_concurrently_is_delivered_once(
        siem: SiemReceiver, only_the_siem_url: list[str]) -> None:
    tenant = make_tenant("Twice Co")

    # Two in-process attempts at once: one sends, the other sees the lease and skips.
    alert_id = _outbox_row(tenant)
    siem.set_delay(1)
    start = threading.Barrier(2)
    results: list[str] = []

    def attempt() -> None:
        start.wait()
        results.append(service.deliver(alert_id))

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["delivered", "skipped"]
    _check_once(siem, alert_id)
    assert len(_received(siem, alert_id, attempts=True)) == 1

    # Two tasks for one alert on the real worker (two processes): still one delivery.
    queued = _outbox_row(tenant)
    assert dispatch.send_now(service.DELIVER_TASK, str(queued))
    assert dispatch.send_now(service.DELIVER_TASK, str(queued))
    _wait_delivered([queued], timeout=30)
    time.sleep(1.5)  # the second task has had its chance
    _check_once(siem, queued)
    assert len(_received(siem, queued, attempts=True)) == 1
    assert len(_audited(tenant, "alert.delivered", queued)) == 1


def test_redirect_is_not_followed(siem: SiemReceiver, only_the_siem_url: list[str]) -> None:
    tenant = make_tenant("Redirect Co")
    alert_id = _outbox_row(tenant)
    siem.set_failing(307)
    try:
        assert service.deliver(alert_id) == "pending"
    finally:
        siem.set_failing(None)
    alert = _row(alert_id)
    assert alert.last_error and "307" in alert.last_error
    assert len(only_the_siem_url) == 1  # the redirect was not followed


def test_attempt_outliving_its_lease_does_not_undo_the_delivery(siem: SiemReceiver) -> None:
    """A late attempt whose claim was taken over (its lease ran out while another attempt
    delivered the alert) must record nothing when its own answer finally comes: here a late
    failure on an alert past the retry window, which would turn "delivered" into "given up".
    """
    tenant = make_tenant("Stale Attempt Co")
    retry_for = timedelta(seconds=get_settings().ALERT_RETRY_FOR_SECONDS)
    alert_id = _outbox_row(tenant, age=retry_for + timedelta(minutes=1))
    claimed = outbox._claim(alert_id)  # the slow attempt holds the alert...
    assert claimed is not None
    _, stale_token = claimed
    with system_session() as db:  # ...until its lease runs out
        db.execute(update(Alert).where(Alert.id == alert_id)
                   .values(locked_until=datetime.now(UTC) - timedelta(seconds=1)))
    assert service.deliver(alert_id) == "delivered"  # another attempt takes over
    assert outbox._record_attempt(alert_id, stale_token, "late 500") == "skipped"
    alert = _row(alert_id)
    assert alert.status == "delivered" and alert.last_error is None
    assert len(_audited(tenant, "alert.delivered", alert_id)) == 1
    assert _audited(tenant, "alert.given_up", alert_id) == []


def test_an_attempt_ends_inside_its_lease(siem: SiemReceiver) -> None:
    """A receiver slower than the lease allows is cut off before the claim expires."""
    tenant = make_tenant("Slow Receiver Co")
    alert_id = _outbox_row(tenant)
    lease = get_settings().JOB_LEASE_SECONDS
    siem.set_delay(lease + 2)
    try:
        started = time.monotonic()
        assert service.deliver(alert_id) == "pending"
        assert time.monotonic() - started < lease
    finally:
        siem.set_delay(0)

def test_the_receiver_only_ever_saw_its_webhook_path(siem: SiemReceiver) -> None:
    log = siem.base_dir / "siem.log"
    lines = log.read_text().splitlines()
    assert lines
    for line in lines:
        assert '"POST /webhook HTTP/1.1"' in line, line
