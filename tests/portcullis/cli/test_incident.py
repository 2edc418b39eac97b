"""The incident-response commands (``portcullis tenants | access-keys | sessions | members |
audit search``), in process through click's CliRunner, against the real app: what each one
changes, seen through the front door (a revoked key or session answers 401, a suspended
tenant's writes 403 ``tenant_suspended``, a suspended member cannot sign in), the line it
prints, its exit code, its audit events (actor type ``operator``, in that tenant's chain
only), another tenant left untouched, and a refusal (an unknown tenant, key, user or email)
as exactly one line with status 1 and no traceback.

Every credential is used once before the command, so that the identity cache of this process
holds it: the command's revocation has to reach the very next request all the same.

``audit search`` is compared with GET /api/v1/audit-events for the same tenant; its time
filters run on events recorded with the chain's clock set (``chain.now``) to whole hours of
2021-03-01, which no other test writes in these tenants.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from sqlalchemy import select

from devstack.stack import LocalStack
from portcullis.accounts.models import Role
from portcullis.alerts.models import Alert
from portcullis.audit import chain
from portcullis.audit import service as audit_service
from portcullis.audit.models import AuditEvent, Severity
from portcullis.cli import main
from portcullis.cli.audit import SEARCH_PAGE
from portcullis.db import system_session, tenant_session
from portcullis.tenants.models import SuspendedBy, TenantStatus
from tests.support.factories import (
    PASSWORD,
    Key,
    LoggedIn,
    Member,
    make_access_key,
    make_job,
    make_member,
    make_session,
    make_tenant,
    record_event,
)
from tests.support.web import make_client, problem_code

pytestmark = pytest.mark.usefixtures("stack")

ME = "/api/v1/auth/me"
LOGIN = "/api/v1/auth/login"
AUDIT_URL = "/api/v1/audit-events"
ITEM_FIELDS = {"id", "occurred_at", "action", "severity", "actor", "target", "ip",
               "user_agent", "details"}
OPERATOR = {"type": "operator", "id": "cli"}


# --------------------------------------------------------------------------- helpers


def _invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _ok(result: Result) -> str:
    """The one line a successful command prints."""
    assert result.exit_code == 0, result.output
    assert result.exception is None, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def _refused(result: Result, *names: str) -> str:
    """Status 1, exactly one line naming what was unknown, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].strip(), result.output
    assert any(name in lines[0].lower() for name in names), result.output
    return lines[0]


def _usage_error(result: Result) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "Usage:" in result.output, result.output


def _events(tenant_id: uuid.UUID, action: str | None = None) -> list[dict[str, Any]]:
    """The tenant's events in chain order, rendered as the API renders them (read around the
    API and the CLI)."""
    stmt = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    with system_session() as db:
        return [audit_service.event_json(e) for e in db.scalars(stmt.order_by(AuditEvent.seq))]


def _newest_first(tenant_id: uuid.UUID) -> list[str]:
    with system_session() as db:
        return [str(i) for i in db.scalars(
            select(AuditEvent.id).where(AuditEvent.tenant_id == tenant_id)
            .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc()))]


def _me(app: Flask, who: LoggedIn) -> int:
    return make_client(app, who).get(ME).status_code


def _use_key(app: Flask, key: Key, job_id: uuid.UUID) -> int:
    """GET /api/v1/jobs/{id}: a route that takes keys (scope jobs:read)."""
    return make_client(app).get(f"/api/v1/jobs/{job_id}", headers=key.bearer).status_code


def _write(app: Flask, admin: LoggedIn) -> tuple[int, str | None]:
    """A write of the tenant's: a new access key."""
    response = make_client(app, admin).post(
        "/api/v1/access-keys", headers={"X-CSRF-Token": admin.csrf},
        json={"name": "incident", "scopes": ["jobs:read"], "expires_in_days": 1})
    return response.status_code, problem_code(response)


def _login(app: Flask, member: Member) -> tuple[int, str | None]:
    response = make_client(app).post(LOGIN, json={"email": member.email, "password": PASSWORD})
    return response.status_code, problem_code(response)


@dataclass
class Keyed:
    """A tenant with an admin, their session, a job and a live key that reads it."""

    tenant_id: uuid.UUID
    admin: LoggedIn
    job_id: uuid.UUID
    key: Key


def _keyed(app: Flask, name: str) -> Keyed:
    tenant = make_tenant(name)
    admin = make_session(make_member(tenant, Role.admin))
    job_id = make_job(admin)
    key = make_access_key(admin)
    assert _use_key(app, key, job_id) == 200  # live, and now in the identity cache
    assert _me(app, admin) == 200
    return Keyed(tenant, admin, job_id, key)


def _tenant_line(tenant_id: uuid.UUID) -> str:
    result = _invoke("tenants", "list")
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if line.startswith(str(tenant_id))]
    return line


# --------------------------------------------------------------------------- tenants


def test_tenants_list_shows_every_tenant_with_its_status_oldest_first() -> None:
    older = make_tenant("List Older Co")
    newer = make_tenant("List Newer Co", status=TenantStatus.suspended)
    result = _invoke("tenants", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.fullmatch(rf"{older}\s+active\s+List Older Co", _tenant_line(older))
    assert re.fullmatch(rf"{newer}\s+suspended\s+List Newer Co", _tenant_line(newer))
    positions = [i for i, line in enumerate(lines)
                 if line.startswith((str(older), str(newer)))]
    assert [lines[i].split()[0] for i in positions] == [str(older), str(newer)]


def test_tenant_suspend_makes_it_read_only_and_reactivate_restores_it(app: Flask) -> None:
    tenant = make_tenant("CLI Suspended Co")
    admin = make_session(make_member(tenant, Role.admin))
    bystander = make_session(make_member(make_tenant("CLI Bystander Co"), Role.admin))
    assert _write(app, admin)[0] == 201
    assert _me(app, admin) == 200

    line = _ok(_invoke("tenants", "suspend", tenant))
    assert line == f"suspended {tenant} (CLI Suspended Co)"
    assert _write(app, admin) == (403, "tenant_suspended")
    reader = make_client(app, admin)
    assert reader.get("/api/v1/members").status_code == 200  # reads still answer
    assert reader.get(ME).get_json()["tenant"]["status"] == "suspended"
    assert _write(app, bystander)[0] == 201  # another tenant is untouched
    assert re.fullmatch(rf"{tenant}\s+suspended\s+CLI Suspended Co", _tenant_line(tenant))

    [event] = _events(tenant, "tenant.suspended")
    assert event["actor"] == OPERATOR
    assert event["target"] == {"type": "tenant", "id": str(tenant)}
    assert event["severity"] == "critical"
    assert _events(bystander.member.tenant_id, "tenant.suspended") == []
    with system_session() as db:  # alerted as the operator route's suspension is
        alerts = list(db.scalars(select(Alert.id).where(
            Alert.tenant_id == tenant, Alert.type == "alert.tenant_suspended")))
    assert len(alerts) == 1

    line = _ok(_invoke("tenants", "reactivate", tenant))
    assert line == f"reactivated {tenant} (CLI Suspended Co)"
    assert _write(app, admin)[0] == 201
    assert re.fullmatch(rf"{tenant}\s+active\s+CLI Suspended Co", _tenant_line(tenant))
    [back] = _events(tenant, "tenant.reactivated")
    assert back["actor"] == OPERATOR
    assert back["target"] == {"type": "tenant", "id": str(tenant)}
    assert _events(bystander.member.tenant_id, "tenant.reactivated") == []


def test_tenant_reactivate_lifts_the_overdue_rules_suspension(app: Flask) -> None:
    tenant = make_tenant("CLI Overdue Lift Co", status=TenantStatus.suspended,
                         suspended_by=SuspendedBy.overdue)
    admin = make_session(make_member(tenant, Role.admin))
    assert _write(app, admin) == (403, "tenant_suspended")
    assert _ok(_invoke("tenants", "reactivate", tenant)) == (
        f"reactivated {tenant} (CLI Overdue Lift Co)")
    assert _write(app, admin)[0] == 201
    [event] = _events(tenant, "tenant.reactivated")
    assert event["actor"] == OPERATOR


@pytest.mark.parametrize("verb", ["suspend", "reactivate"])
def test_tenant_status_of_an_unknown_tenant_is_refused(verb: str) -> None:
    _refused(_invoke("tenants", verb, uuid.uuid4()), "tenant")


def test_tenant_status_needs_a_uuid() -> None:
    result = _invoke("tenants", "suspend", "not-a-uuid")
    assert result.exit_code == 2 and "Traceback" not in result.output


# --------------------------------------------------------------------------- access keys


def test_access_key_revoke_one_key(app: Flask) -> None:
    mine = _keyed(app, "CLI Key Co")
    spare = make_access_key(mine.admin, name="spare")
    assert _use_key(app, spare, mine.job_id) == 200
    other = _keyed(app, "CLI Key Other Co")

    line = _ok(_invoke("access-keys", "revoke", "--tenant", mine.tenant_id,
                       "--key", mine.key.id))
    assert line == f"revoked access key {mine.key.id} of {mine.tenant_id}"
    assert _use_key(app, mine.key, mine.job_id) == 401
    assert _use_key(app, spare, mine.job_id) == 200  # only that key
    assert _use_key(app, other.key, other.job_id) == 200  # another tenant's still works

    [event] = _events(mine.tenant_id, "access_key.revoked")
    assert event["actor"] == OPERATOR
    assert event["target"] == {"type": "access_key", "id": str(mine.key.id)}
    assert _events(other.tenant_id, "access_key.revoked") == []


def test_access_key_revoke_all_keys_of_the_tenant(app: Flask) -> None:
    mine = _keyed(app, "CLI All Keys Co")
    colleague = make_member(mine.tenant_id, Role.admin)
    theirs = make_access_key(colleague, name="colleague's")
    dead = make_access_key(mine.admin, name="already revoked", revoked=True)
    assert _use_key(app, theirs, mine.job_id) == 200
    other = _keyed(app, "CLI All Keys Other Co")

    line = _ok(_invoke("access-keys", "revoke", "--tenant", mine.tenant_id, "--all"))
    assert line == f"revoked 2 access key(s) of {mine.tenant_id}"  # the live ones only
    assert _use_key(app, mine.key, mine.job_id) == 401
    assert _use_key(app, theirs, mine.job_id) == 401
    assert _use_key(app, other.key, other.job_id) == 200

    events = _events(mine.tenant_id, "access_key.revoked")
    assert sorted(e["target"]["id"] for e in events) == sorted(
        [str(mine.key.id), str(theirs.id)])
    assert str(dead.id) not in {e["target"]["id"] for e in events}
    assert all(e["actor"] == OPERATOR for e in events)
    assert _events(other.tenant_id, "access_key.revoked") == []


def test_access_key_revoke_refuses_an_unknown_or_foreign_key(app: Flask) -> None:
    mine = _keyed(app, "CLI Unknown Key Co")
    other = _keyed(app, "CLI Foreign Key Co")
    _refused(_invoke("access-keys", "revoke", "--tenant", mine.tenant_id,
                     "--key", uuid.uuid4()), "key")
    # Another tenant's key is unknown in this tenant: it is not revoked.
    _refused(_invoke("access-keys", "revoke", "--tenant", mine.tenant_id,
                     "--key", other.key.id), "key")
    assert _use_key(app, other.key, other.job_id) == 200
    assert _use_key(app, mine.key, mine.job_id) == 200
    assert _events(mine.tenant_id, "access_key.revoked") == []
    assert _events(other.tenant_id, "access_key.revoked") == []


@pytest.mark.parametrize("how", ["key", "all"])
def test_access_key_revoke_refuses_an_unknown_tenant(app: Flask, how: str) -> None:
    mine = _keyed(app, "CLI Keys Unknown Tenant Co")
    which = ["--key", str(mine.key.id)] if how == "key" else ["--all"]
    _refused(_invoke("access-keys", "revoke", "--tenant", uuid.uuid4(), *which), "tenant")
    assert _use_key(app, mine.key, mine.job_id) == 200


@pytest.mark.parametrize("which", ["both", "neither"])
def test_access_key_revoke_takes_exactly_one_of_key_and_all(app: Flask, which: str) -> None:
    mine = _keyed(app, "CLI Keys Usage Co")
    extra = {"both": ["--key", str(mine.key.id), "--all"], "neither": []}[which]
    _usage_error(_invoke("access-keys", "revoke", "--tenant", mine.tenant_id, *extra))
    assert _use_key(app, mine.key, mine.job_id) == 200
    assert _events(mine.tenant_id, "access_key.revoked") == []


def test_access_key_revoke_needs_a_tenant() -> None:
    _usage_error(_invoke("access-keys", "revoke", "--all"))


# --------------------------------------------------------------------------- sessions


@dataclass
class Logged:
    """A tenant with two users: the first with two sessions, the second with one."""

    tenant_id: uuid.UUID
    first: Member
    first_sessions: list[LoggedIn]
    second: LoggedIn


def _logged(app: Flask, name: str) -> Logged:
    tenant = make_tenant(name)
    first = make_member(tenant, Role.admin)
    sessions = [make_session(first), make_session(first)]  # two browsers
    second = make_session(make_member(tenant, Role.staff))
    for who in [*sessions, second]:
        assert _me(app, who) == 200  # live, and now in the identity cache
    return Logged(tenant, first, sessions, second)


def test_sessions_revoke_one_users_sessions(app: Flask) -> None:
    mine = _logged(app, "CLI Sessions Co")
    other = _logged(app, "CLI Sessions Other Co")

    line = _ok(_invoke("sessions", "revoke", "--tenant", mine.tenant_id,
                       "--user", mine.first.user_id))
    assert line == (f"revoked 2 session(s) of user {mine.first.user_id} "
                    f"of {mine.tenant_id}")
    for cookie in mine.first_sessions:
        assert _me(app, cookie) == 401
    assert _me(app, mine.second) == 200  # another user of the tenant
    for cookie in [*other.first_sessions, other.second]:
        assert _me(app, cookie) == 200  # another tenant

    events = _events(mine.tenant_id, "auth.session_revoked")
    assert sorted(e["target"]["id"] for e in events) == sorted(
        str(s.session_id) for s in mine.first_sessions)
    for event in events:
        assert event["actor"] == OPERATOR
        assert event["target"]["type"] == "session"
        assert event["details"]["user_id"] == str(mine.first.user_id)
    assert _events(other.tenant_id, "auth.session_revoked") == []


def test_sessions_revoke_every_session_of_the_tenant(app: Flask) -> None:
    mine = _logged(app, "CLI All Sessions Co")
    other = _logged(app, "CLI All Sessions Other Co")

    line = _ok(_invoke("sessions", "revoke", "--tenant", mine.tenant_id, "--all"))
    assert line == f"revoked 3 session(s) of every user of {mine.tenant_id}"
    for cookie in [*mine.first_sessions, mine.second]:
        assert _me(app, cookie) == 401
    for cookie in [*other.first_sessions, other.second]:
        assert _me(app, cookie) == 200

    events = _events(mine.tenant_id, "auth.session_revoked")
    assert sorted(e["target"]["id"] for e in events) == sorted(
        str(s.session_id) for s in [*mine.first_sessions, mine.second])
    assert all(e["actor"] == OPERATOR for e in events)
    assert _events(other.tenant_id, "auth.session_revoked") == []

    # Nothing live is left: again, nothing is revoked and nothing is audited.
    again = _ok(_invoke("sessions", "revoke", "--tenant", mine.tenant_id, "--all"))
    assert again == f"revoked 0 session(s) of every user of {mine.tenant_id}"
    assert len(_events(mine.tenant_id, "auth.session_revoked")) == 3


def test_sessions_revoke_refuses_an_unknown_or_foreign_user(app: Flask) -> None:
    mine = _logged(app, "CLI Unknown User Co")
    other = _logged(app, "CLI Foreign User Co")
    _refused(_invoke("sessions", "revoke", "--tenant", mine.tenant_id,
                     "--user", uuid.uuid4()), "user")
    # Another tenant's user is unknown here: their sessions live on.
    _refused(_invoke("sessions", "revoke", "--tenant", mine.tenant_id,
                     "--user", other.first.user_id), "user")
    for cookie in [*mine.first_sessions, mine.second, *other.first_sessions, other.second]:
        assert _me(app, cookie) == 200
    assert _events(mine.tenant_id, "auth.session_revoked") == []
    assert _events(other.tenant_id, "auth.session_revoked") == []


@pytest.mark.parametrize("how", ["user", "all"])
def test_sessions_revoke_refuses_an_unknown_tenant(app: Flask, how: str) -> None:
    mine = _logged(app, "CLI Sessions Unknown Tenant Co")
    which = ["--user", str(mine.first.user_id)] if how == "user" else ["--all"]
    _refused(_invoke("sessions", "revoke", "--tenant", uuid.uuid4(), *which), "tenant")
    for cookie in mine.first_sessions:
        assert _me(app, cookie) == 200


@pytest.mark.parametrize("which", ["both", "neither"])
def test_sessions_revoke_takes_exactly_one_of_user_and_all(app: Flask, which: str) -> None:
    mine = _logged(app, "CLI Sessions Usage Co")
    extra = {"both": ["--user", str(mine.first.user_id), "--all"], "neither": []}[which]
    _usage_error(_invoke("sessions", "revoke", "--tenant", mine.tenant_id, *extra))
    for cookie in [*mine.first_sessions, mine.second]:
        assert _me(app, cookie) == 200
    assert _events(mine.tenant_id, "auth.session_revoked") == []


# --------------------------------------------------------------------------- members


def test_members_suspend_cuts_the_member_off_at_once(app: Flask) -> None:
    tenant = make_tenant("CLI Member Co")
    boss = make_session(make_member(tenant, Role.admin))
    victim = make_member(tenant, Role.staff)
    cookie = make_session(victim)
    job_id = make_job(cookie)
    key = make_access_key(victim)
    assert _me(app, cookie) == 200 and _use_key(app, key, job_id) == 200
    assert _login(app, victim)[0] == 200
    other_tenant = make_tenant("CLI Member Other Co")
    other = make_session(make_member(other_tenant, Role.staff, email=f"x-{victim.email}"))
    assert _me(app, other) == 200

    line = _ok(_invoke("members", "suspend", "--tenant", tenant, "--email", victim.email))
    assert line == f"suspended member {victim.membership_id} ({victim.email}) of {tenant}"
    assert _me(app, cookie) == 401  # their sessions die
    assert _use_key(app, key, job_id) == 401  # and their keys
    assert _login(app, victim) == (403, "member_suspended")  # they cannot sign in again
    assert _me(app, boss) == 200  # the rest of the tenant works
    assert _me(app, other) == 200  # and so does another tenant
    members = make_client(app, boss).get("/api/v1/members?limit=200").get_json()["items"]
    assert {m["id"]: m["status"] for m in members}[str(victim.membership_id)] == "suspended"

    [event] = _events(tenant, "member.status_changed")
    assert event["actor"] == OPERATOR
    assert event["target"] == {"type": "member", "id": str(victim.membership_id)}
    assert event["details"] == {"from": "active", "to": "suspended"}
    assert _events(other_tenant, "member.status_changed") == []


def test_members_suspend_refuses_an_unknown_or_foreign_email(app: Flask) -> None:
    tenant = make_tenant("CLI Unknown Email Co")
    make_member(tenant, Role.admin)
    other_tenant = make_tenant("CLI Foreign Email Co")
    outsider = make_member(other_tenant, Role.staff)
    cookie = make_session(outsider)
    assert _me(app, cookie) == 200

    _refused(_invoke("members", "suspend", "--tenant", tenant,
                     "--email", f"nobody-{uuid.uuid4().hex[:8]}@example.com"),
             "member", "email")
    # A member of another tenant is unknown here: they are not suspended.
    _refused(_invoke("members", "suspend", "--tenant", tenant, "--email", outsider.email),
             "member", "email")
    assert _me(app, cookie) == 200
    assert _login(app, outsider)[0] == 200
    assert _events(tenant, "member.status_changed") == []
    assert _events(other_tenant, "member.status_changed") == []


def test_members_suspend_refuses_an_unknown_tenant(app: Flask) -> None:
    member = make_member(make_tenant("CLI Members Unknown Tenant Co"), Role.staff)
    _refused(_invoke("members", "suspend", "--tenant", uuid.uuid4(), "--email", member.email),
             "tenant")
    assert _login(app, member)[0] == 200


def test_members_suspend_refuses_the_last_active_admin(app: Flask) -> None:
    tenant = make_tenant("CLI Last Admin Co")
    admin = make_member(tenant, Role.admin)
    cookie = make_session(admin)
    result = _invoke("members", "suspend", "--tenant", tenant, "--email", admin.email)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.output.splitlines()) == 1, result.output
    assert _me(app, cookie) == 200
    assert _events(tenant, "member.status_changed") == []


# --------------------------------------------------------------------------- audit search


START = datetime(2021, 3, 1, 10, tzinfo=UTC)
# (hour after START, action, severity): one event an hour, 10:00 to 14:00.
TIMELINE = [(0, "auth.login_failed", Severity.warning), (1, "member.invited", Severity.notice),
            (2, "auth.login_failed", Severity.warning),
            (3, "tenant.suspended", Severity.critical), (4, "auth.logout", Severity.info)]


@dataclass
class Timeline:
    tenant_id: uuid.UUID
    ids: dict[int, str]  # hour after START -> event id
    other_tenant_id: uuid.UUID
    other_ids: set[str]


def _record_timeline(tenant_id: uuid.UUID) -> dict[int, str]:
    ids: dict[int, str] = {}
    with pytest.MonkeyPatch.context() as patch:
        for hour, action, severity in TIMELINE:
            moment = START + timedelta(hours=hour)
            patch.setattr(chain, "now", lambda moment=moment: moment)
            event = record_event(tenant_id, action, severity,
                                 actor=("user", str(uuid.uuid4())),
                                 target=("member", f"m-{hour}"), ip=f"203.0.113.{hour + 1}",
                                 user_agent=f"search-test/{hour}", details={"hour": hour})
            ids[hour] = str(event.id)
    return ids


@pytest.fixture(scope="module")
def timeline(stack: LocalStack) -> Timeline:
    tenant = make_tenant("CLI Search Co")
    other = make_tenant("CLI Search Other Co")
    ids = _record_timeline(tenant)
    other_ids = set(_record_timeline(other).values())  # the same actions at the same times
    return Timeline(tenant, ids, other, other_ids)


def _search(tenant_id: uuid.UUID, *args: object) -> list[dict[str, Any]]:
    result = _invoke("audit", "search", "--tenant", tenant_id, *args)
    assert result.exit_code == 0, result.output
    assert result.exception is None, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def _hours(timeline: Timeline, items: list[dict[str, Any]]) -> list[int]:
    by_id = {event_id: hour for hour, event_id in timeline.ids.items()}
    assert not {i["id"] for i in items} & timeline.other_ids, "another tenant's event"
    return [by_id[item["id"]] for item in items]


def test_search_answers_the_api_items_newest_first(app: Flask, timeline: Timeline) -> None:
    items = _search(timeline.tenant_id)
    assert _hours(timeline, items) == [4, 3, 2, 1, 0]
    admin = make_session(make_member(timeline.tenant_id, Role.admin))
    response = make_client(app, admin).get(AUDIT_URL, query_string={"limit": 200})
    assert response.status_code == 200, response.get_json()
    api_items = response.get_json()["items"]
    assert api_items and all(set(i) == ITEM_FIELDS for i in api_items)
    for item in items:
        assert set(item) == ITEM_FIELDS
    assert items == api_items  # same events, same order, same keys and values

    api_filtered = make_client(app, admin).get(
        AUDIT_URL, query_string={"action": "auth.login_failed"}).get_json()["items"]
    assert _search(timeline.tenant_id, "--action", "auth.login_failed") == api_filtered


def test_search_each_line_is_one_json_object(timeline: Timeline) -> None:
    result = _invoke("audit", "search", "--tenant", timeline.tenant_id)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == len(TIMELINE)
    for line in lines:
        assert isinstance(json.loads(line), dict)
    first = json.loads(lines[0])
    assert first["actor"]["type"] == "user" and first["ip"] == "203.0.113.5"
    assert first["target"] == {"type": "member", "id": "m-4"}
    assert first["user_agent"] == "search-test/4" and first["details"] == {"hour": 4}
    assert datetime.fromisoformat(first["occurred_at"]) == START + timedelta(hours=4)


def test_search_filters_by_action(timeline: Timeline) -> None:
    assert _hours(timeline, _search(timeline.tenant_id, "--action", "auth.login_failed")) == [
        2, 0]
    assert _hours(timeline, _search(timeline.tenant_id, "--action", "member.invited")) == [1]
    assert _search(timeline.tenant_id, "--action", "bucket.created") == []


def test_search_filters_by_severity(timeline: Timeline) -> None:
    assert _hours(timeline, _search(timeline.tenant_id, "--severity", "critical")) == [3]
    items = _search(timeline.tenant_id, "--severity", "warning")
    assert _hours(timeline, items) == [2, 0]
    assert {i["severity"] for i in items} == {"warning"}


def test_search_refuses_an_unknown_severity(timeline: Timeline) -> None:
    result = _invoke("audit", "search", "--tenant", timeline.tenant_id, "--severity", "loud")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_search_since_is_inclusive_and_until_exclusive(timeline: Timeline) -> None:
    tenant = timeline.tenant_id
    assert _hours(timeline, _search(tenant, "--since", "2021-03-01T11:00:00",
                                    "--until", "2021-03-01T13:00:00")) == [2, 1]
    assert _hours(timeline, _search(tenant, "--since", "2021-03-01T13:00:00")) == [4, 3]
    assert _hours(timeline, _search(tenant, "--until", "2021-03-01T11:00:00")) == [0]
    # An offset is honoured (12:00+01:00 is 11:00 UTC); a date is its midnight, UTC.
    assert _hours(timeline, _search(tenant, "--since", "2021-03-01T12:00:00+0100")) == [
        4, 3, 2, 1]
    assert _hours(timeline, _search(tenant, "--since", "2021-03-01",
                                    "--until", "2021-03-02")) == [4, 3, 2, 1, 0]
    assert _search(tenant, "--until", "2021-03-01") == []
    assert _search(tenant, "--since", "2021-03-02") == []


def test_search_filters_combine(timeline: Timeline) -> None:
    assert _hours(timeline, _search(timeline.tenant_id, "--action", "auth.login_failed",
                                    "--since", "2021-03-01T11:00:00")) == [2]
    assert _search(timeline.tenant_id, "--severity", "critical",
                   "--until", "2021-03-01T13:00:00") == []


def test_search_limit_keeps_the_newest(timeline: Timeline) -> None:
    assert _hours(timeline, _search(timeline.tenant_id, "--limit", "2")) == [4, 3]
    assert _hours(timeline, _search(timeline.tenant_id, "--limit", "1",
                                    "--severity", "warning")) == [2]
    result = _invoke("audit", "search", "--tenant", timeline.tenant_id, "--limit", "0")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_search_never_shows_another_tenants_events(timeline: Timeline) -> None:
    other = _search(timeline.other_tenant_id)
    assert {i["id"] for i in other} == timeline.other_ids
    assert not {i["id"] for i in other} & set(timeline.ids.values())
    mine = _search(timeline.tenant_id, "--limit", "1000")
    assert {i["id"] for i in mine} == set(timeline.ids.values())


def test_search_refuses_an_unknown_tenant() -> None:
    _refused(_invoke("audit", "search", "--tenant", uuid.uuid4()), "tenant")


# A tenant with more events than one page of the search.
MANY = SEARCH_PAGE + 5


@pytest.fixture(scope="module")
def crowded(stack: LocalStack) -> uuid.UUID:
    tenant = make_tenant("CLI Search Crowded Co")
    with tenant_session(tenant) as db:
        for n in range(MANY):
            record_event(tenant, "auth.logout", actor=("user", str(uuid.uuid4())),
                         details={"n": n}, db=db)
    return tenant


def test_search_pages_through_more_than_a_page(crowded: uuid.UUID) -> None:
    truth = _newest_first(crowded)
    assert len(truth) == MANY
    wanted = SEARCH_PAGE + 3
    items = _search(crowded, "--limit", wanted)
    assert [i["id"] for i in items] == truth[:wanted]
    everything = _search(crowded, "--limit", MANY * 2)
    assert [i["id"] for i in everything] == truth


def test_search_streams_each_page_as_it_comes(monkeypatch: pytest.MonkeyPatch,
                                              crowded: uuid.UUID) -> None:
    """The first page is printed before the second is read: a failure on the second page
    leaves the first page's lines out already."""
    real = audit_service.list_events
    pages: list[int] = []

    def second_page_fails(*args: Any, **kwargs: Any) -> Any:
        if pages:
            raise RuntimeError("the database went away")
        page = real(*args, **kwargs)
        pages.append(len(page.items))
        return page

    monkeypatch.setattr(audit_service, "list_events", second_page_fails)
    result = _invoke("audit", "search", "--tenant", crowded, "--limit", MANY)
    assert isinstance(result.exception, RuntimeError)
    assert pages and pages[0] > 0
    lines = result.output.splitlines()
    assert [json.loads(line)["id"] for line in lines] == _newest_first(crowded)[:pages[0]]
