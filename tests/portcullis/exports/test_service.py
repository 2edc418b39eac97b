"""Asking for an audit export: who the trail and the SIEM alert name as its actor.

An access key acts as itself (API.md: a key acts with its creator's role, within its own
scopes): an export it asks for is recorded and alerted as ``access_key`` with the key's id,
not as the member who created the key; a member's own export is recorded as ``user``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from sqlalchemy import select

from portcullis.accounts.models import Role
from portcullis.alerts.models import Alert
from portcullis.audit.models import AuditEvent
from portcullis.callers import Caller, Origin
from portcullis.db import tenant_session
from portcullis.exports import service as exports
from portcullis.jobs import dispatch
from portcullis.jobs.models import Job
from tests.support.factories import make_access_key, make_member, make_tenant

pytestmark = pytest.mark.usefixtures("stack")

ORIGIN = Origin("198.51.100.140", "exports-test/1.0")


@pytest.fixture(autouse=True)
def no_sends() -> Iterator[None]:
    """Nothing reaches the broker: no worker runs the export or delivers the alert here."""
    with mock.patch.object(dispatch, "send_now", return_value=True):
        yield


def _ask(caller: Caller) -> uuid.UUID:
    until = datetime.now(UTC)
    return exports.request_export(caller, until - timedelta(days=1), until, "jsonl")


def _recorded(tenant_id: uuid.UUID, job_id: uuid.UUID) -> tuple[AuditEvent, Alert, Job]:
    with tenant_session(tenant_id) as db:
        event = db.scalars(select(AuditEvent).where(
            AuditEvent.action == "audit.exported",
            AuditEvent.details["job_id"].astext == str(job_id))).one()
        alert = db.scalars(select(Alert).where(
            Alert.type == "alert.audit_export",
            Alert.payload["details"]["job_id"].astext == str(job_id))).one()
        job = db.get_one(Job, job_id)
        return event, alert, job


def test_an_export_asked_for_by_an_access_key_is_the_keys() -> None:
    tenant = make_tenant()
    admin = make_member(tenant, Role.admin)
    key = make_access_key(admin, ["audit:read"])
    caller = Caller.access_key(tenant, key.id, admin.user_id, Role.admin,
                               frozenset({"audit:read"}), ORIGIN)

    job_id = _ask(caller)

    event, alert, job = _recorded(tenant, job_id)
    assert (event.actor_type, event.actor_id) == ("access_key", str(key.id))
    assert str(event.ip) == ORIGIN.ip and event.user_agent == ORIGIN.user_agent
    assert alert.payload["actor"] == {"type": "access_key", "id": str(key.id)}
    assert alert.payload["ip"] == ORIGIN.ip
    # The job is still its creator's, so the key (acting as them) can read its result.
    assert job.created_by_user_id == admin.user_id


def test_a_members_own_export_is_theirs() -> None:
    tenant = make_tenant()
    admin = make_member(tenant, Role.admin)

    job_id = _ask(Caller.user(tenant, admin.user_id, Role.admin, ORIGIN))

    event, alert, job = _recorded(tenant, job_id)
    assert (event.actor_type, event.actor_id) == ("user", str(admin.user_id))
    assert alert.payload["actor"] == {"type": "user", "id": str(admin.user_id)}
    assert job.created_by_user_id == admin.user_id
