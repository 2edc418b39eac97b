"""Who may call the members, invitations and access-keys routes (API.md, "Members and access keys").

Every route x every role answers exactly the documented status; access keys (even an
admin's with every scope) get 403 ``session_required``; no credentials get 401; another
tenant's member or key is a 404 and stays untouched.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from devstack.stack import LocalStack
from portcullis.access_keys import service as key_service
from portcullis.access_keys.models import AccessKey
from portcullis.accounts.models import Invitation, Membership, MemberStatus, Role
from portcullis.db import system_session
from tests.support.factories import (
    Member,
    make_access_key,
    make_member,
    make_session,
    make_tenant,
)
from tests.support.web import ClientFor

ROLES = [Role.admin, Role.manager, Role.staff, Role.viewonly]


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def tenant(stack: LocalStack) -> uuid.UUID:
    """One tenant for the whole table; every case makes its own caller and target."""
    tenant_id = make_tenant("RBAC Co")
    make_member(tenant_id, Role.admin)  # never the last admin, whatever a case does
    return tenant_id


def _email(tag: str) -> str:
    return f"rbac-{tag}-{uuid.uuid4().hex[:10]}@example.com"


def _membership(member_id: uuid.UUID) -> Membership | None:
    with system_session() as db:
        return db.get(Membership, member_id)


def _key(key_id: uuid.UUID) -> AccessKey | None:
    with system_session() as db:
        return db.get(AccessKey, key_id)


@dataclass(frozen=True)
class Case:
    """One route: how to call it, and what must hold after an allowed or refused call."""

    method: str
    path: Callable[[uuid.UUID], str]  # given the target's id
    body: dict | None
    target: Callable[[uuid.UUID], uuid.UUID]  # make a target in the tenant, return its id
    allowed: dict[Role, int]
    changed: Callable[[uuid.UUID], bool]  # did the call take effect on the target?


def _staff_target(tenant_id: uuid.UUID) -> uuid.UUID:
    return make_member(tenant_id, Role.staff).membership_id


def _key_target(tenant_id: uuid.UUID) -> uuid.UUID:
    return make_access_key(make_member(tenant_id, Role.admin), ["files:read"]).id


def _no_target(tenant_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid4()


def _demoted(member_id: uuid.UUID) -> bool:
    member = _membership(member_id)
    return member is not None and member.role == Role.viewonly.value


def _removed(member_id: uuid.UUID) -> bool:
    member = _membership(member_id)
    return member is not None and member.status == MemberStatus.removed.value


def _revoked(key_id: uuid.UUID) -> bool:
    key = _key(key_id)
    return key is not None and key.revoked_at is not None


def _never(_: uuid.UUID) -> bool:
    return False


ADMIN_ONLY_WRITE = {Role.admin: 0, Role.manager: 403, Role.staff: 403, Role.viewonly: 403}

CASES: dict[str, Case] = {
    "GET members": Case(
        "GET", lambda _: "/api/v1/members", None, _no_target,
        {Role.admin: 200, Role.manager: 200, Role.staff: 200, Role.viewonly: 200}, _never),
    "PATCH member": Case(
        "PATCH", lambda i: f"/api/v1/members/{i}", {"role": "viewonly"}, _staff_target,
        {**ADMIN_ONLY_WRITE, Role.admin: 200}, _demoted),
    "DELETE member": Case(
        "DELETE", lambda i: f"/api/v1/members/{i}", None, _staff_target,
        {**ADMIN_ONLY_WRITE, Role.admin: 204}, _removed),
    "GET access-keys": Case(
        "GET", lambda _: "/api/v1/access-keys", None, _no_target,
        {**ADMIN_ONLY_WRITE, Role.admin: 200}, _never),
    "POST access-keys": Case(
        "POST", lambda _: "/api/v1/access-keys",
        {"name": "rbac", "scopes": ["files:read"], "expires_in_days": 30}, _no_target,
        {**ADMIN_ONLY_WRITE, Role.admin: 201}, _never),
    "DELETE access-key": Case(
        "DELETE", lambda i: f"/api/v1/access-keys/{i}", None, _key_target,
        {**ADMIN_ONLY_WRITE, Role.admin: 204}, _revoked),
}

# POST /api/v1/invitations: admin invites anyone; a manager only staff and view-only.
INVITE: dict[tuple[Role, Role], int] = {
    **{(Role.admin, invited): 201 for invited in ROLES},
    (Role.manager, Role.admin): 403,
    (Role.manager, Role.manager): 403,
    (Role.manager, Role.staff): 201,
    (Role.manager, Role.viewonly): 201,
    **{(caller, invited): 403 for caller in (Role.staff, Role.viewonly) for invited in ROLES},
}


def _send(client: FlaskClient, method: str, path: str, body: dict | None,
          headers: dict[str, str] | None = None) -> tuple[int, dict]:
    response = client.open(path, method=method, json=body, headers=headers or {})
    return response.status_code, (response.get_json(force=True, silent=True) or {})


def _invitations_to(email: str) -> int:
    with system_session() as db:
        return len(db.scalars(select(Invitation).where(Invitation.email == email)).all())


# --------------------------------------------------------------------------- role table


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value)
@pytest.mark.parametrize("route", list(CASES))
def test_route_by_role(client_for: ClientFor, tenant: uuid.UUID, route: str, role: Role) -> None:
    case = CASES[route]
    caller = make_session(make_member(tenant, role))
    target = case.target(tenant)
    status, body = _send(client_for(caller), case.method, case.path(target), case.body,
                         {"X-CSRF-Token": caller.csrf})
    expected = case.allowed[role]
    assert status == expected, body
    if expected == 403:
        assert body["code"] == "forbidden"
        assert not case.changed(target), "a refused call must change nothing"
    elif case.changed is not _never:
        assert case.changed(target), "an allowed call must take effect"
    if route == "GET members":
        ids = {m["id"] for m in body["items"]}
        assert str(caller.member.membership_id) in ids
        assert set(body["items"][0]) == {"id", "user_id", "email", "name", "role", "status"}
    if route == "POST access-keys" and status == 201:
        assert body["key"].startswith("pck_")


@pytest.mark.parametrize("invited", ROLES, ids=lambda r: f"invites-{r.value}")
@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value)
def test_invitation_by_role(client_for: ClientFor, tenant: uuid.UUID, role: Role,
                            invited: Role) -> None:
    caller = make_session(make_member(tenant, role))
    email = _email(f"{role.value}-{invited.value}")
    status, body = _send(client_for(caller), "POST", "/api/v1/invitations",
                         {"email": email, "role": invited.value},
                         {"X-CSRF-Token": caller.csrf})
    expected = INVITE[(role, invited)]
    assert status == expected, body
    if expected == 201:
        assert set(body) == {"id", "expires_at"}
        uuid.UUID(body["id"])
        expires = datetime.fromisoformat(body["expires_at"])
        assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)
        assert _invitations_to(email) == 1
    else:
        assert body["code"] == "forbidden"
        assert _invitations_to(email) == 0


def test_the_role_table_covers_every_route_and_role() -> None:
    for case in CASES.values():
        assert set(case.allowed) == set(ROLES)
    assert set(INVITE) == {(a, b) for a in ROLES for b in ROLES}


# --------------------------------------------------------------------------- credentials

EVERY_ROUTE = [*CASES, "POST invitations"]


def _route(name: str, target: uuid.UUID) -> tuple[str, str, dict | None]:
    if name == "POST invitations":
        return "POST", "/api/v1/invitations", {"email": _email("key"), "role": "viewonly"}
    case = CASES[name]
    return case.method, case.path(target), case.body


def _target_for(name: str, tenant_id: uuid.UUID) -> uuid.UUID:
    return CASES[name].target(tenant_id) if name in CASES else uuid.uuid4()


@pytest.mark.parametrize("route", EVERY_ROUTE)
def test_an_admin_key_with_every_scope_needs_a_session(client_for: ClientFor, tenant: uuid.UUID,
                                                       route: str) -> None:
    admin = make_member(tenant, Role.admin)
    _, secret = make_access_key(admin, list(key_service.SCOPES))
    target = _target_for(route, tenant)
    method, path, body = _route(route, target)
    status, problem = _send(client_for(), method, path, body,
                            {"Authorization": f"Bearer {secret}"})
    assert status == 403, problem
    assert problem["code"] == "session_required"
    if route in CASES:
        assert not CASES[route].changed(target)
    if route == "POST invitations":
        assert _invitations_to(body["email"]) == 0  # type: ignore[index]


@pytest.mark.parametrize("route", EVERY_ROUTE)
def test_no_credentials_is_401(client_for: ClientFor, tenant: uuid.UUID, route: str) -> None:
    target = _target_for(route, tenant)
    method, path, body = _route(route, target)
    status, problem = _send(client_for(), method, path, body)
    assert status == 401, problem
    assert problem["code"] == "not_authenticated"
    if route in CASES:
        assert not CASES[route].changed(target)


def test_an_unknown_or_revoked_key_is_401(client_for: ClientFor, tenant: uuid.UUID) -> None:
    admin = make_member(tenant, Role.admin)
    _, secret = make_access_key(admin, list(key_service.SCOPES), revoked=True)
    for bearer in (secret, "pck_" + "A" * 43):
        status, problem = _send(client_for(), "GET", "/api/v1/members", None,
                                {"Authorization": f"Bearer {bearer}"})
        assert status == 401 and problem["code"] == "not_authenticated"


# --------------------------------------------------------------------------- other tenants


@pytest.fixture(scope="module")
def foreign(stack: LocalStack) -> tuple[Member, Member, uuid.UUID]:
    """Another tenant: its admin, a staff member and an access key of that admin."""
    other = make_tenant("Elsewhere")
    admin = make_member(other, Role.admin)
    staff = make_member(other, Role.staff)
    key_id, _ = make_access_key(admin, ["files:read"])
    return admin, staff, key_id


@pytest.mark.parametrize("victim", ["admin", "staff"])
@pytest.mark.parametrize("method,body", [("PATCH", {"role": "viewonly"}),
                                         ("PATCH", {"status": "suspended"}),
                                         ("DELETE", None)],
                         ids=["demote", "suspend", "remove"])
def test_another_tenants_member_is_404(client_for: ClientFor, tenant: uuid.UUID,
                                       foreign: tuple[Member, Member, uuid.UUID],
                                       victim: str, method: str, body: dict | None) -> None:
    member = foreign[0] if victim == "admin" else foreign[1]
    before = _membership(member.membership_id)
    admin = make_session(make_member(tenant, Role.admin))
    client = client_for(admin)
    status, problem = _send(client, method, f"/api/v1/members/{member.membership_id}", body,
                            {"X-CSRF-Token": admin.csrf})
    assert status == 404, problem
    assert problem["code"] == "not_found"
    # Same answer as for an id that does not exist anywhere.
    _, missing = _send(client, method, f"/api/v1/members/{uuid.uuid4()}", body,
                       {"X-CSRF-Token": admin.csrf})
    assert {k: v for k, v in problem.items() if k != "request_id"} == \
        {k: v for k, v in missing.items() if k != "request_id"}
    after = _membership(member.membership_id)
    assert before is not None and after is not None
    assert (after.role, after.status) == (before.role, before.status)
    listed = _send(client, "GET", "/api/v1/members?limit=200", None)[1]["items"]
    assert str(member.membership_id) not in {m["id"] for m in listed}


def test_another_tenants_access_key_is_404(client_for: ClientFor, tenant: uuid.UUID,
                                           foreign: tuple[Member, Member, uuid.UUID]) -> None:
    key_id = foreign[2]
    admin = make_session(make_member(tenant, Role.admin))
    client = client_for(admin)
    status, problem = _send(client, "DELETE", f"/api/v1/access-keys/{key_id}", None,
                            {"X-CSRF-Token": admin.csrf})
    assert status == 404, problem
    assert problem["code"] == "not_found"
    key = _key(key_id)
    assert key is not None and key.revoked_at is None
    listed = _send(client, "GET", "/api/v1/access-keys?limit=200", None)[1]["items"]
    assert str(key_id) not in {k["id"] for k in listed}
