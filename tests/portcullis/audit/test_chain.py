"""The per-tenant hash chain: verified by the CLI, broken by any edit or deletion."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from devstack.stack import LocalStack
from portcullis.audit.models import AuditEvent, Severity
from portcullis.audit.service import AuditRecord, Target, audit_log, verify_chain
from portcullis.callers import Caller, Origin, Role
from portcullis.cli import main
from portcullis.db import system_session, tenant_session
from tests.support.factories import make_tenant

pytestmark = pytest.mark.usefixtures("stack")


def _record(tenant: uuid.UUID, n: int = 3) -> None:
    for i in range(n):
        with tenant_session(tenant) as db:
            audit_log.record(db, AuditRecord(
                "sample.happened", Caller.user(tenant, uuid.uuid4(), Role.staff), tenant,
                severity=Severity.notice, target=Target("thing", str(i)),
                origin=Origin("203.0.113.9", "pytest/1"),
                details={"n": i, "password": "hunter2hunter2", "nested": {"token": "abc"}}))


def _superuser(stack: LocalStack) -> psycopg.Connection:
    url = stack["postgres"].superuser_url().replace("+psycopg", "")
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SET session_replication_role = replica")  # bypass the append-only trigger
    return conn


def test_recorded_events_chain_and_verify() -> None:
    tenant = make_tenant()
    _record(tenant)
    with system_session() as db:
        events = db.scalars(select(AuditEvent).where(AuditEvent.tenant_id == tenant)
                            .order_by(AuditEvent.seq)).all()
        assert [e.seq for e in events] == [1, 2, 3]
        assert events[1].prev_hash == events[0].hash
        assert verify_chain(db, tenant) is None
    result = CliRunner().invoke(main, ["audit", "verify", "--tenant", str(tenant)])
    assert result.exit_code == 0, result.output
    assert "1 chain(s), 3 event(s)" in result.output


def test_details_are_scrubbed_of_secrets() -> None:
    tenant = make_tenant()
    _record(tenant, 1)
    with tenant_session(tenant) as db:
        event = db.scalars(select(AuditEvent)).one()
    assert event.details["password"] == "[redacted]"
    assert event.details["nested"]["token"] == "[redacted]"
    assert "hunter2" not in str(event.details)


def test_edited_row_fails_verification_naming_it(stack: LocalStack) -> None:
    tenant = make_tenant()
    _record(tenant)
    with system_session() as db:
        second = db.scalars(select(AuditEvent).where(AuditEvent.tenant_id == tenant,
                                                     AuditEvent.seq == 2)).one()
    with _superuser(stack) as conn:
        conn.execute("UPDATE audit_events SET details = '{\"n\": 99}' WHERE id = %s",
                     (second.id,))
    result = CliRunner().invoke(main, ["audit", "verify", "--tenant", str(tenant)])
    assert result.exit_code == 1
    assert str(second.id) in result.output
    assert "content does not match" in result.output


def test_deleted_row_fails_verification(stack: LocalStack) -> None:
    tenant = make_tenant()
    _record(tenant)
    with system_session() as db:
        second = db.scalars(select(AuditEvent).where(AuditEvent.tenant_id == tenant,
                                                     AuditEvent.seq == 2)).one()
    with _superuser(stack) as conn:
        conn.execute("DELETE FROM audit_events WHERE id = %s", (second.id,))
    result = CliRunner().invoke(main, ["audit", "verify", "--tenant", str(tenant)])
    assert result.exit_code == 1
    assert "seq 3" in result.output and "deleted" in result.output


def test_verify_all_tenants_finds_the_broken_one(stack: LocalStack) -> None:
    good, bad = make_tenant(), make_tenant()
    _record(good, 2)
    _record(bad, 2)
    with _superuser(stack) as conn:
        conn.execute("UPDATE audit_events SET action = 'forged' WHERE tenant_id = %s AND seq = 1",
                     (bad,))
    result = CliRunner().invoke(main, ["audit", "verify"])
    assert result.exit_code == 1
    assert str(bad) in result.output


def test_concurrent_writers_do_not_fork_the_chain() -> None:
    tenant = make_tenant()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            _record(tenant, 5)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with system_session() as db:
        seqs = db.scalars(select(AuditEvent.seq).where(AuditEvent.tenant_id == tenant)
                          .order_by(AuditEvent.seq)).all()
        assert seqs == list(range(1, 31))
        assert verify_chain(db, tenant) is None
