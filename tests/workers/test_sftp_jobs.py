"""SFTP account jobs through /api/v1/sftp-accounts, a real worker and the SFTPGo double.

SFTPGo down (503 or its port closed) is retried, never failed, and once it is back the
account is provisioned: one user, the password shown once. A provisioning whose worker is
killed after SFTPGo made the user, but before the job committed, is run again by the stuck
job sweeper and converges on that one user, with a password that logs in. And the
plaintext password reaches only its reader: not the worker's log, the web app's, the audit
trail, a job's error or SFTPGo (which gets a bcrypt hash), not even when SFTPGo refuses.

The double runs in this process, so a test wraps one of its handlers (restored after) to
hang or refuse a request; every other exchange still goes through its spec checks.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.wrappers import Request, Response

from devstack.sftpgo_double import API_PREFIX, SFTPGoDouble
from devstack.stack import LocalStack
from portcullis.audit.models import AuditEvent
from portcullis.callers import Role
from portcullis.db import system_session
from portcullis.jobs.models import Job
from portcullis.jobs.service import requeue_stuck
from tests.support.factories import make_bucket, make_member, make_session, make_tenant
from tests.support.web import make_client
from tests.support.worker import CeleryProcess, start_worker
from tests.workers.test_job_runner import load, wait_finished

Handler = Callable[[Request, dict[str, str]], Response]
BCRYPT = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")


@dataclass(frozen=True)
class Manager:
    """A tenant's manager, logged in to the app, with a bucket to feed."""

    tenant: uuid.UUID
    client: FlaskClient
    csrf: dict[str, str]
    bucket: uuid.UUID


@dataclass(frozen=True)
class Created:
    account_id: str
    username: str
    job_id: uuid.UUID

    @property
    def prefix(self) -> str:
        return f"sftp/{uuid.UUID(self.account_id).hex}/"


@pytest.fixture
def double(stack: LocalStack) -> Iterator[SFTPGoDouble]:
    """The session's SFTPGo double, up and prompt before and after the test whatever it did
    (later tests share it); every exchange meanwhile matched SFTPGo's published spec."""
    sftpgo: SFTPGoDouble = stack["sftpgo"]
    sftpgo.set_down(False)
    sftpgo.set_delay(0)
    before = len(sftpgo.validation_errors)
    try:
        yield sftpgo
    finally:
        sftpgo.set_down(False)
        sftpgo.set_delay(0)
    assert sftpgo.validation_errors[before:] == []


def _manager(app: Flask, name: str) -> Manager:
    tenant = make_tenant(name)
    who = make_session(make_member(tenant, Role.manager))
    return Manager(tenant, make_client(app, who), {"X-CSRF-Token": who.csrf},
                   make_bucket(tenant))


def _create(manager: Manager) -> Created:
    response = manager.client.post("/api/v1/sftp-accounts", headers=manager.csrf,
                                   json={"bucket_id": str(manager.bucket), "label": "drop"})
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["account"]["status"] == "provisioning"
    return Created(body["account"]["id"], body["account"]["username"],
                   uuid.UUID(body["job_id"]))


def _read_job(manager: Manager, job_id: uuid.UUID) -> dict[str, Any]:
    """One read through the API, as its creator (the first after success spends the
    password shown once)."""
    response = manager.client.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def _finished(manager: Manager, job_id: uuid.UUID, timeout: float = 60) -> dict[str, Any]:
    """The job once it has finished (polled in the database: the API limits its callers),
    as its creator's first read after that shows it."""
    wait_finished(job_id, timeout)
    return _read_job(manager, job_id)


def _status(manager: Manager, account_id: str) -> str:
    items = manager.client.get("/api/v1/sftp-accounts").get_json()["items"]
    [account] = [a for a in items if a["id"] == account_id]
    return str(account["status"])


def _users_at(double: SFTPGoDouble, prefix: str) -> list[str]:
    """Every SFTPGo user jailed to ``prefix``: one account must never leave two."""
    return sorted(name for name, user in double.users.items()
                  if (user.get("filesystem") or {}).get("s3config", {}).get("key_prefix")
                  == prefix)


def _creations(double: SFTPGoDouble, username: str) -> int:
    """How many times SFTPGo answered 201 to creating ``username``."""
    return sum(1 for r in double.requests
               if r.method == "POST" and r.path == f"{API_PREFIX}/users" and r.status == 201
               and isinstance(r.body, dict) and r.body.get("username") == username)


def _provisioned_once(double: SFTPGoDouble, created: Created, password: str) -> None:
    assert _users_at(double, created.prefix) == [created.username]
    assert _creations(double, created.username) == 1
    assert double.users[created.username]["status"] == 1
    assert double.received_plaintext(created.username) is False  # a bcrypt hash only
    assert double.can_log_in(created.username, password)


# --- SFTPGo down ---------------------------------------------------------------------------


@pytest.mark.parametrize("refuse", [False, True], ids=["503", "port-closed"])
def test_sftpgo_down_is_retried_until_it_is_back(app: Flask, double: SFTPGoDouble,
                                                 worker: CeleryProcess, refuse: bool) -> None:
    manager = _manager(app, "SFTP Outage Co")
    double.set_down(True, refuse=refuse)
    try:
        created = _create(manager)
        seen: set[str] = set()
        deadline = time.monotonic() + 30
        while True:  # two attempts met SFTPGo down, and the job waits for a third
            job = load(created.job_id)
            seen.add(job.status)
            if job.attempts >= 2 and job.status == "queued":
                break
            assert time.monotonic() < deadline, f"not retried: {job.status}, {job.attempts}"
            time.sleep(0.05)
        assert _read_job(manager, created.job_id)["status"] == "queued"
        assert seen <= {"queued", "running"}, seen  # retried, never failed
        worker.wait_for_log(f"job {created.job_id} waits for sftpgo", timeout=5)
        assert job.error is None
        assert created.username not in double.users
        assert _status(manager, created.account_id) == "provisioning"
    finally:
        double.set_down(False)

    job_view = _finished(manager, created.job_id)
    assert job_view["status"] == "succeeded", job_view
    assert load(created.job_id).attempts >= 3
    result = job_view["result"]
    password = result["password"]
    assert isinstance(password, str) and len(password) >= 32
    assert result["username"] == created.username
    assert _read_job(manager, created.job_id)["result"]["password"] is None  # shown once
    assert _status(manager, created.account_id) == "active"
    _provisioned_once(double, created, password)


# --- a worker killed mid-way -----------------------------------------------------------------


@pytest.fixture
def shared_worker_held(worker: CeleryProcess) -> Iterator[CeleryProcess]:
    """The shared worker stopped, so a dedicated one takes the next message; the test
    starts it again to take over (else this does, and waits until it is live)."""
    worker.stop(timeout=30)
    try:
        yield worker
    finally:
        if not worker.running:
            worker.start()
        worker.wait_live(timeout=90)


def test_provisioning_killed_after_sftpgo_made_the_user_converges_on_rerun(
        app: Flask, double: SFTPGoDouble, shared_worker_held: CeleryProcess, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    manager = _manager(app, "SFTP Killed Co")
    original = double._handlers["add_user"]
    made, release = threading.Event(), threading.Event()
    hung: list[str] = []

    def create_then_hang(request: Request, args: dict[str, str]) -> Response:
        """SFTPGo makes the user, then its answer is held until the worker is dead."""
        response = original(request, args)
        if response.status_code == 201 and not made.is_set():
            hung.append(str(request.get_json()["username"]))
            made.set()
            release.wait(30)
        return response

    monkeypatch.setitem(double._handlers, "add_user", create_then_hang)
    first = start_worker(tmp_path / "first.log", "first", concurrency=1)
    try:
        created = _create(manager)
        assert made.wait(30), first.tail()
        first.kill()  # the user exists in SFTPGo; the job never committed
    finally:
        release.set()
        first.stop()
    assert hung == [created.username]
    assert load(created.job_id).status == "running"  # nobody acked it
    assert _status(manager, created.account_id) == "provisioning"
    assert created.username in double.users

    # Another worker (the shared one, started again) runs it once the sweeper resends it,
    # after the dead worker's lease ran out.
    shared_worker_held.start()
    shared_worker_held.wait_live(timeout=90)
    deadline = time.monotonic() + 30
    while load(created.job_id).attempts < 2:
        assert time.monotonic() < deadline, "the stuck job was never run again"
        requeue_stuck()
        time.sleep(0.5)
    job_view = _finished(manager, created.job_id)
    assert job_view["status"] == "succeeded", job_view
    assert load(created.job_id).attempts == 2
    password = job_view["result"]["password"]
    assert isinstance(password, str) and password
    assert _status(manager, created.account_id) == "active"
    _provisioned_once(double, created, password)


# --- the password reaches only its reader ------------------------------------------------------


def _recording(handler: Handler, into: list[tuple[str, bytes]]) -> Handler:
    """``handler``, keeping each request's raw body, keyed by the user it is about."""

    def record(request: Request, args: dict[str, str]) -> Response:
        raw = request.get_data(cache=True)
        username = args.get("username") or str(json.loads(raw).get("username", ""))
        into.append((username, raw))
        return handler(request, args)

    return record


def _audit_text(tenant: uuid.UUID) -> tuple[set[str], str]:
    """The tenant's audit actions and every event rendered in full."""
    with system_session() as db:
        events = db.scalars(select(AuditEvent).where(AuditEvent.tenant_id == tenant)).all()
        rows = [{column.key: getattr(event, column.key)
                 for column in AuditEvent.__table__.columns} for event in events]
    return {str(row["action"]) for row in rows}, repr(rows)


def _jobs_text(tenant: uuid.UUID) -> str:
    """Every job of the tenant as stored: args, result (sealed at rest) and error."""
    with system_session() as db:
        jobs = db.scalars(select(Job).where(Job.tenant_id == tenant)).all()
        return repr([(job.args, job.result, job.error) for job in jobs])


def test_the_password_is_in_no_log_audit_event_error_or_sftpgo_request(
        app: Flask, double: SFTPGoDouble, worker: CeleryProcess,
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    received: list[tuple[str, bytes]] = []
    for endpoint in ("add_user", "update_user"):
        monkeypatch.setitem(double._handlers, endpoint,
                            _recording(double._handlers[endpoint], received))
    manager = _manager(app, "SFTP Secrets Co")
    created = _create(manager)
    provisioned = _finished(manager, created.job_id)
    assert provisioned["status"] == "succeeded", provisioned
    rotation = manager.client.post(
        f"/api/v1/sftp-accounts/{created.account_id}/rotate-password", headers=manager.csrf)
    assert rotation.status_code == 202, rotation.get_json()
    rotation_job = uuid.UUID(rotation.get_json()["job_id"])
    rotated = _finished(manager, rotation_job)
    assert rotated["status"] == "succeeded", rotated
    passwords = [provisioned["result"]["password"], rotated["result"]["password"]]
    assert all(isinstance(p, str) and p for p in passwords) and len(set(passwords)) == 2
    assert double.can_log_in(created.username, passwords[1])
    assert provisioned["error"] is None and rotated["error"] is None

    # SFTPGo was sent a bcrypt hash of each password, never the password itself.
    bodies = [raw for username, raw in received if username == created.username]
    hashes = [json.loads(raw)["password"] for raw in bodies if "password" in json.loads(raw)]
    assert hashes and all(BCRYPT.match(h) for h in hashes), hashes
    for password in passwords:
        assert any(bcrypt.checkpw(password.encode(), h.encode()) for h in hashes)
    assert double.received_plaintext(created.username) is False

    actions, audit = _audit_text(manager.tenant)
    assert {"sftp_account.created", "sftp_account.password_rotated"} <= actions, actions
    worker_log = worker.log.read_text(errors="replace")
    assert created.username in worker_log  # the log that covers these jobs
    places = {
        "the worker's log": worker_log,
        "the web app's log": caplog.text + repr([r.getMessage() for r in caplog.records]),
        "the audit trail": audit,
        "the jobs as stored": _jobs_text(manager.tenant),
        "SFTPGo's request bodies": repr(bodies),
        "the double's request log": repr(double.requests),
        "the double's log file": (double.base_dir / "sftpgo-double.log").read_text(),
    }
    for password in passwords:
        leaks = [place for place, text in places.items() if password in text]
        assert leaks == [], f"the password is in {leaks}"


def test_a_refused_provisioning_fails_with_an_error_that_holds_no_password(
        app: Flask, double: SFTPGoDouble, worker: CeleryProcess,
        monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []

    def refuse(request: Request, args: dict[str, str]) -> Response:
        """SFTPGo refuses the user for good, echoing what it was sent (as some releases'
        validation messages do)."""
        body = request.get_json()
        sent.append(str(body["password"]))
        error = f"invalid user {body['username']}: password {body['password']!r} refused"
        return Response(json.dumps({"error": error, "message": "Bad Request"}), status=400,
                        content_type="application/json")

    monkeypatch.setitem(double._handlers, "add_user", refuse)
    manager = _manager(app, "SFTP Refused Co")
    created = _create(manager)
    job_view = _finished(manager, created.job_id)
    assert job_view["status"] == "failed", job_view
    assert job_view["error"]["code"] == "sftpgo_refused"
    assert job_view["result"] is None
    [hashed] = sent  # refused for good: not retried
    assert BCRYPT.match(hashed)
    assert load(created.job_id).attempts == 1
    assert _status(manager, created.account_id) == "failed"
    assert created.username not in double.users

    _actions, audit = _audit_text(manager.tenant)
    places = {
        "the job's error as shown": json.dumps(job_view["error"]),
        "the jobs as stored": _jobs_text(manager.tenant),
        "the worker's log": worker.log.read_text(errors="replace"),
        "the audit trail": audit,
    }
    leaks = [place for place, text in places.items() if hashed in text]
    assert leaks == [], f"the password hash is in {leaks}"
    assert "$2" not in json.dumps(job_view["error"])
