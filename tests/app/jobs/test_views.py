"""GET /api/v1/jobs/{id}: the creator or an admin; anyone else, any other tenant: 404."""

from __future__ import annotations

import uuid

import pytest
from flask import Flask

from portcullis.accounts.models import Role, SessionState
from tests.support.factories import LoggedIn, make_job, make_member, make_session, make_tenant
from tests.support.web import make_client

pytestmark = pytest.mark.usefixtures("stack")


def _get(app: Flask, who: LoggedIn | None, job_id: uuid.UUID) -> tuple[int, dict]:
    response = make_client(app, who).get(f"/api/v1/jobs/{job_id}")
    return response.status_code, response.get_json(force=True)


def test_creator_reads_own_job(app: Flask) -> None:
    tenant = make_tenant()
    staff = make_session(make_member(tenant, Role.staff))
    job_id = make_job(staff)
    status, body = _get(app, staff, job_id)
    assert status == 200
    assert body["id"] == str(job_id)
    assert body["status"] == "queued" and body["progress"] == 0
    assert set(body) == {"id", "kind", "status", "progress", "result", "error", "created_at",
                         "started_at", "finished_at"}


def test_admin_reads_any_job_of_the_tenant(app: Flask) -> None:
    tenant = make_tenant()
    staff = make_session(make_member(tenant, Role.staff))
    admin = make_session(make_member(tenant, Role.admin))
    assert _get(app, admin, make_job(staff))[0] == 200


@pytest.mark.parametrize("role", [Role.manager, Role.staff, Role.viewonly])
def test_other_members_get_404(app: Flask, role: Role) -> None:
    tenant = make_tenant()
    owner = make_session(make_member(tenant, Role.staff))
    other = make_session(make_member(tenant, role))
    status, body = _get(app, other, make_job(owner))
    assert status == 404 and body["code"] == "not_found"


def test_another_tenants_admin_gets_404(app: Flask) -> None:
    owner = make_session(make_member(make_tenant(), Role.admin))
    intruder = make_session(make_member(make_tenant(), Role.admin))
    status, body = _get(app, intruder, make_job(owner))
    assert status == 404
    assert body == _get(app, intruder, uuid.uuid4())[1] | {"request_id": body["request_id"]}


def test_anonymous_gets_401(app: Flask) -> None:
    owner = make_session(make_member(make_tenant(), Role.admin))
    status, body = _get(app, None, make_job(owner))
    assert status == 401 and body["code"] == "not_authenticated"


def test_restricted_sessions_are_refused(app: Flask) -> None:
    tenant = make_tenant()
    member = make_member(tenant, Role.admin)
    job_id = make_job(make_session(member))
    pending = make_session(member, SessionState.mfa_pending)
    enrolling = make_session(make_member(tenant, Role.admin, mfa=False),
                             SessionState.mfa_enrollment)
    assert _get(app, pending, job_id)[1]["code"] == "mfa_required"
    assert _get(app, enrolling, job_id)[1]["code"] == "mfa_enrollment_required"


def test_forged_cookie_is_401(app: Flask) -> None:
    owner = make_session(make_member(make_tenant(), Role.admin))
    job_id = make_job(owner)
    header, payload, signature = owner.cookie.split(".")
    forged = LoggedIn(owner.member, owner.session_id, f"{header}.{payload}.{signature[::-1]}",
                      owner.csrf)
    assert _get(app, forged, job_id)[0] == 401
