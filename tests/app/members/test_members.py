"""Members and invitations: the last-admin rule, suspension and removal cutting access at
once, validation, pagination, and the invitation life (email, accept, expiry)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from devstack.stack import LocalStack
from portcullis.accounts.models import Invitation, Role
from portcullis.db import system_session
from tests.support.factories import (
    PASSWORD,
    LoggedIn,
    Member,
    make_member,
    make_session,
    make_tenant,
)
from tests.support.mail import link_token, wait_for_mail
from tests.support.web import make_client

NEW_PASSWORD = "members module passphrase 9"


def _email(tag: str) -> str:
    return f"members-{tag}-{uuid.uuid4().hex[:10]}@example.com"


def _patch(client: FlaskClient, who: LoggedIn, member_id: uuid.UUID,
           body: dict) -> tuple[int, dict]:
    response = client.patch(f"/api/v1/members/{member_id}", json=body,
                            headers={"X-CSRF-Token": who.csrf})
    return response.status_code, response.get_json(force=True, silent=True) or {}


def _delete(client: FlaskClient, who: LoggedIn, member_id: uuid.UUID) -> tuple[int, dict]:
    response = client.delete(f"/api/v1/members/{member_id}", headers={"X-CSRF-Token": who.csrf})
    return response.status_code, response.get_json(force=True, silent=True) or {}


def _members(client: FlaskClient) -> dict[str, dict]:
    response = client.get("/api/v1/members?limit=200")
    assert response.status_code == 200, response.get_json()
    return {m["id"]: m for m in response.get_json()["items"]}


def _invite(client: FlaskClient, who: LoggedIn, email: str, role: str = "staff"):
    return client.post("/api/v1/invitations", json={"email": email, "role": role},
                       headers={"X-CSRF-Token": who.csrf})


def _new_key(client: FlaskClient, who: LoggedIn) -> dict:
    response = client.post("/api/v1/access-keys", headers={"X-CSRF-Token": who.csrf},
                           json={"name": "cut off", "scopes": ["jobs:read"],
                                 "expires_in_days": 30})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _key_status(app: Flask, secret: str) -> tuple[int, str]:
    """A live key on a session-only route: 403 session_required; a dead one: 401."""
    response = make_client(app).get("/api/v1/members",
                                    headers={"Authorization": f"Bearer {secret}"})
    return response.status_code, response.get_json()["code"]


def _accept(app: Flask, token: str, name: str = "Newcomer") -> tuple[int, dict]:
    response = make_client(app).post("/api/v1/invitations/accept",
                                     json={"token": token, "name": name, "password": NEW_PASSWORD})
    return response.status_code, response.get_json(force=True, silent=True) or {}


# --------------------------------------------------------------------------- last admin


def test_the_only_admin_cannot_be_demoted_suspended_or_removed(app: Flask) -> None:
    tenant = make_tenant("Last Admin Co")
    first = make_session(make_member(tenant, Role.admin))
    make_member(tenant, Role.manager)
    make_member(tenant, Role.staff)
    client = make_client(app, first)
    me = first.member.membership_id

    for role in ("manager", "staff", "viewonly"):
        status, problem = _patch(client, first, me, {"role": role})
        assert status == 409 and problem["code"] == "last_admin", problem
    status, problem = _patch(client, first, me, {"status": "suspended"})
    assert status == 409 and problem["code"] == "last_admin", problem
    status, problem = _patch(client, first, me, {"role": "staff", "status": "suspended"})
    assert status == 409 and problem["code"] == "last_admin", problem
    status, problem = _delete(client, first, me)
    assert status == 409 and problem["code"] == "last_admin", problem
    assert _members(client)[str(me)]["role"] == "admin"
    assert _members(client)[str(me)]["status"] == "active"

    # A no-op on the last admin is fine.
    assert _patch(client, first, me, {"role": "admin", "status": "active"})[0] == 200

    # Once another admin exists, each of the three is allowed.
    second = make_session(make_member(tenant, Role.admin))
    other = make_client(app, second)
    status, body = _patch(other, second, me, {"status": "suspended"})
    assert status == 200 and body["status"] == "suspended", body
    # A suspended admin does not count: the second is now the only active one.
    status, problem = _patch(other, second, second.member.membership_id, {"role": "staff"})
    assert status == 409 and problem["code"] == "last_admin", problem
    status, problem = _delete(other, second, second.member.membership_id)
    assert status == 409 and problem["code"] == "last_admin", problem

    assert _patch(other, second, me, {"status": "active"})[0] == 200
    status, body = _patch(other, second, me, {"role": "manager"})
    assert status == 200 and body["role"] == "manager", body
    assert _patch(other, second, me, {"role": "admin"})[0] == 200
    assert _delete(other, second, me)[0] == 204
    assert str(me) not in _members(other)


def test_an_admin_may_demote_themself_when_another_admin_exists(app: Flask) -> None:
    tenant = make_tenant("Self Demotion Co")
    first = make_session(make_member(tenant, Role.admin))
    make_member(tenant, Role.admin)
    client = make_client(app, first)
    status, body = _patch(client, first, first.member.membership_id, {"role": "staff"})
    assert status == 200 and body["role"] == "staff", body
    # The demotion holds at once: the next admin-only call is refused.
    again = _patch(client, first, first.member.membership_id, {"role": "admin"})
    assert again[0] == 403 and again[1]["code"] == "forbidden"


def _race(app: Flask, admins: list[LoggedIn], action: str) -> list[tuple[int, dict]]:
    """Every admin acts on themself at the same moment; the answers, in any order."""
    barrier = threading.Barrier(len(admins))
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def act(who: LoggedIn) -> None:
        client = make_client(app, who)
        barrier.wait()
        if action == "remove":
            outcome = _delete(client, who, who.member.membership_id)
        else:
            body = {"role": "manager"} if action == "demote" else {"status": "suspended"}
            outcome = _patch(client, who, who.member.membership_id, body)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=act, args=(who,)) for who in admins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.mark.parametrize("action", ["demote", "suspend", "remove"])
def test_concurrent_changes_to_the_last_two_admins_leave_one(app: Flask, action: str) -> None:
    """The last two admins demote, suspend or remove themselves at once: exactly one wins,
    the other gets 409 last_admin (a few rounds, as a race may not show on the first)."""
    for _ in range(3):
        tenant = make_tenant("Race Co")
        admins = [make_session(make_member(tenant, Role.admin)) for _ in range(2)]
        results = _race(app, admins, action)
        statuses = sorted(status for status, _ in results)
        assert statuses == [200 if action != "remove" else 204, 409], results
        assert [b["code"] for s, b in results if s == 409] == ["last_admin"]
        watcher = make_client(app, make_session(make_member(tenant, Role.viewonly)))
        active_admins = [m for m in _members(watcher).values()
                         if m["role"] == "admin" and m["status"] == "active"]
        assert len(active_admins) == 1


# --------------------------------------------------------------------------- cut off at once


def _cut_off_scenario(app: Flask, stack: LocalStack, how: str) -> None:
    tenant = make_tenant(f"Cut Off {how}")
    boss = make_session(make_member(tenant, Role.admin))
    victim_member = make_member(tenant, Role.admin)
    victim = make_session(victim_member)
    victim_too = make_session(victim_member)  # a second browser
    victim_client = make_client(app, victim)
    key = _new_key(victim_client, victim)
    assert _key_status(app, key["key"]) == (403, "session_required")  # alive
    assert victim_client.get("/api/v1/auth/me").status_code == 200

    boss_client = make_client(app, boss)
    if how == "suspend":
        status, body = _patch(boss_client, boss, victim_member.membership_id,
                              {"status": "suspended"})
        assert status == 200 and body["status"] == "suspended", body
    else:
        assert _delete(boss_client, boss, victim_member.membership_id)[0] == 204

    for cookie in (victim, victim_too):
        response = make_client(app, cookie).get("/api/v1/auth/me")
        assert response.status_code == 401, response.get_json()
    assert _key_status(app, key["key"]) == (401, "not_authenticated")
    keys = {k["id"]: k for k in boss_client.get("/api/v1/access-keys?limit=200")
            .get_json()["items"]}
    assert keys[key["id"]]["revoked_at"] is not None

    listed = _members(boss_client)
    if how == "suspend":
        assert listed[str(victim_member.membership_id)]["status"] == "suspended"
        login = make_client(app).post("/api/v1/auth/login", json={
            "email": victim_member.email, "password": PASSWORD})
        assert login.status_code == 403 and login.get_json()["code"] == "member_suspended"
        # Reactivation does not bring the key back.
        assert _patch(boss_client, boss, victim_member.membership_id,
                      {"status": "active"})[0] == 200
        assert _key_status(app, key["key"]) == (401, "not_authenticated")
        assert make_client(app, victim).get("/api/v1/auth/me").status_code == 401
    else:
        assert str(victim_member.membership_id) not in listed
        login = make_client(app).post("/api/v1/auth/login", json={
            "email": victim_member.email, "password": PASSWORD})
        assert login.status_code == 401 and login.get_json()["code"] == "invalid_credentials"
        # Gone means gone: a second removal or a change is a 404.
        assert _delete(boss_client, boss, victim_member.membership_id)[0] == 404
        assert _patch(boss_client, boss, victim_member.membership_id,
                      {"status": "active"})[0] == 404


def test_suspension_revokes_sessions_and_keys_at_once(app: Flask, stack: LocalStack) -> None:
    _cut_off_scenario(app, stack, "suspend")


def test_removal_revokes_sessions_and_keys_and_hides_the_member(app: Flask,
                                                                stack: LocalStack) -> None:
    _cut_off_scenario(app, stack, "remove")


@pytest.mark.usefixtures("worker")
@pytest.mark.usefixtures("worker")
def test_a_removed_members_email_can_be_invited_again(app: Flask, stack: LocalStack) -> None:
    tenant = make_tenant("Comeback Co")
    admin = make_session(make_member(tenant, Role.admin))
    client = make_client(app, admin)
    email = _email("comeback")
    leaver = make_member(tenant, Role.staff, email=email)
    assert _invite(client, admin, email).status_code == 409  # still a member
    assert _delete(client, admin, leaver.membership_id)[0] == 204

    invited = _invite(client, admin, email, "viewonly")
    assert invited.status_code == 201, invited.get_json()
    token = link_token(wait_for_mail(stack, email, "invited"), "accept-invitation")
    status, body = _accept(app, token, "Back Again")
    assert status == 200, body
    back = [m for m in _members(client).values() if m["email"] == email]
    assert len(back) == 1
    assert back[0]["role"] == "viewonly" and back[0]["status"] == "active"
    assert back[0]["user_id"] != str(leaver.user_id)


# --------------------------------------------------------------------------- validation


@pytest.fixture(scope="module")
def team(stack: LocalStack) -> tuple[LoggedIn, Member]:
    tenant = make_tenant("Validation Co")
    return make_session(make_member(tenant, Role.admin)), make_member(tenant, Role.staff)


@pytest.mark.parametrize("body", [
    {"role": "viewonly", "email": "x@example.com"},
    {"nickname": "bob"},
    {"role": "viewonly", "user_id": str(uuid.uuid4())},
    {"status": "removed"},
    {"role": "viewonly", "status": "removed"},
    {"role": "owner"},
    {"status": "deleted"},
    {},
], ids=["extra-email", "unknown-only", "extra-user_id", "removed", "role-and-removed",
        "bad-role", "bad-status", "empty"])
def test_patch_rejects_bad_bodies(app: Flask, team: tuple[LoggedIn, Member],
                                  body: dict) -> None:
    admin, staff = team
    client = make_client(app, admin)
    status, problem = _patch(client, admin, staff.membership_id, body)
    assert status == 400, problem
    assert problem["code"] == "validation_error"
    assert _members(client)[str(staff.membership_id)]["role"] == "staff"
    assert _members(client)[str(staff.membership_id)]["status"] == "active"


def test_patch_needs_a_json_body(app: Flask, team: tuple[LoggedIn, Member]) -> None:
    admin, staff = team
    response = make_client(app, admin).patch(f"/api/v1/members/{staff.membership_id}",
                                             data="role=viewonly",
                                             headers={"X-CSRF-Token": admin.csrf,
                                                      "Content-Type": "text/plain"})
    assert response.status_code in (400, 415)


def test_unsafe_calls_without_the_csrf_header_are_refused(app: Flask,
                                                          team: tuple[LoggedIn, Member]) -> None:
    admin, staff = team
    client = make_client(app, admin)
    for response in (
        client.patch(f"/api/v1/members/{staff.membership_id}", json={"role": "viewonly"}),
        client.delete(f"/api/v1/members/{staff.membership_id}"),
        client.post("/api/v1/invitations", json={"email": _email("csrf"), "role": "staff"}),
        client.patch(f"/api/v1/members/{staff.membership_id}", json={"role": "viewonly"},
                     headers={"X-CSRF-Token": "not-the-token"}),
    ):
        assert response.status_code == 403 and response.get_json()["code"] == "csrf_failed"
    assert _members(client)[str(staff.membership_id)]["role"] == "staff"


def test_members_list_shape(app: Flask, team: tuple[LoggedIn, Member]) -> None:
    admin, staff = team
    body = make_client(app, admin).get("/api/v1/members").get_json()
    assert set(body) == {"items", "next_cursor"}
    listed = {m["id"]: m for m in body["items"]}
    assert listed[str(staff.membership_id)] == {
        "id": str(staff.membership_id), "user_id": str(staff.user_id), "email": staff.email,
        "name": "staff user", "role": "staff", "status": "active"}


# --------------------------------------------------------------------------- pagination


def test_members_pagination_returns_everyone_once(app: Flask) -> None:
    tenant = make_tenant("Paging Co")
    admin = make_session(make_member(tenant, Role.admin))
    expected = {str(admin.member.membership_id)}
    for role in (Role.manager, Role.staff, Role.staff, Role.viewonly, Role.viewonly,
                 Role.staff):
        expected.add(str(make_member(tenant, role).membership_id))
    suspended = make_member(tenant, Role.staff)
    removed = make_member(tenant, Role.staff)
    client = make_client(app, admin)
    _patch(client, admin, suspended.membership_id, {"status": "suspended"})
    _delete(client, admin, removed.membership_id)
    expected.add(str(suspended.membership_id))  # suspended members are listed, removed not

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        url = "/api/v1/members?limit=2" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(url)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        seen += [m["id"] for m in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert len(body["items"]) == 2, "only the last page may be short"
        assert pages < 20, "pagination does not end"
    assert len(seen) == len(set(seen)), "a member appeared twice"
    assert set(seen) == expected
    assert pages in (4, 5)  # 8 members, 2 a page (at most one empty page at the end)

    everything = client.get("/api/v1/members?limit=200").get_json()
    assert everything["next_cursor"] is None
    assert [m["id"] for m in everything["items"]] == seen


@pytest.mark.parametrize("query", ["cursor=not-a-cursor!!", "cursor=bm9wZQ",
                                   "cursor=WyJ4Il0", "cursor=WyJ4IiwgInkiXQ"])
def test_a_bad_cursor_is_400(app: Flask, team: tuple[LoggedIn, Member], query: str) -> None:
    admin, _ = team
    response = make_client(app, admin).get(f"/api/v1/members?{query}")
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["code"] == "invalid_cursor"


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=two", "page=2"])
def test_bad_page_parameters_are_400(app: Flask, team: tuple[LoggedIn, Member],
                                     query: str) -> None:
    admin, _ = team
    response = make_client(app, admin).get(f"/api/v1/members?{query}")
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["code"] == "validation_error"


# --------------------------------------------------------------------------- invitations


@pytest.mark.parametrize("variant", ["same", "upper", "padded", "suspended"])
def test_inviting_a_member_of_the_tenant_is_409(app: Flask, team: tuple[LoggedIn, Member],
                                                variant: str) -> None:
    admin, staff = team
    if variant == "suspended":  # still a member
        staff = make_member(admin.member.tenant_id, Role.staff)
        assert _patch(make_client(app, admin), admin, staff.membership_id,
                      {"status": "suspended"})[0] == 200
    email = {"same": staff.email, "upper": staff.email.upper(),
             "padded": f"  {staff.email} ", "suspended": staff.email}[variant]
    response = _invite(make_client(app, admin), admin, email)
    assert response.status_code == 409, response.get_json()
    assert response.get_json()["code"] == "already_member"


def _text(message: object) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[attr-defined]


@pytest.mark.usefixtures("worker")
def test_an_account_of_another_tenant_is_invited_like_a_fresh_address(
        app: Flask, stack: LocalStack) -> None:
    """The inviter learns nothing about other tenants: same status, body and audit trail as
    for an unknown address. The recipient's email says what accepting needs, and accepting
    while the other account lives is a clear 409, the invitation still usable after."""
    tenant = make_tenant("Discreet Co")
    admin = make_session(make_member(tenant, Role.admin))
    client = make_client(app, admin)
    elsewhere = make_tenant("Elsewhere Co")
    outsider = make_member(elsewhere, Role.staff)
    fresh = _email("fresh")

    answers = {who: _invite(client, admin, email) for who, email in
               (("outsider", outsider.email.upper()), ("fresh", fresh))}
    bodies = {who: r.get_json() for who, r in answers.items()}
    for who, response in answers.items():
        assert response.status_code == 201, (who, bodies[who])
        assert response.mimetype == "application/json"
        assert set(bodies[who]) == {"id", "expires_at"}
    assert set(answers["outsider"].headers.keys()) == set(answers["fresh"].headers.keys())
    spread = abs(datetime.fromisoformat(bodies["outsider"]["expires_at"])
                 - datetime.fromisoformat(bodies["fresh"]["expires_at"]))
    assert spread < timedelta(minutes=5)
    events = client.get("/api/v1/audit-events?action=member.invited&limit=200").get_json()
    trail = {e["target"]["id"]: e for e in events["items"]}
    seen = [trail[bodies[who]["id"]] for who in ("outsider", "fresh")]
    assert seen[0]["details"] == seen[1]["details"] == {"role": "staff"}
    assert {k for k in seen[0] if seen[0][k] != seen[1][k]} <= {"id", "occurred_at", "target"}

    fresh_text = _text(wait_for_mail(stack, fresh, "invited"))
    message = wait_for_mail(stack, outsider.email, "invited")
    text = _text(message)
    assert "Discreet Co" in str(message["Subject"])
    assert "already belongs to a Portcullis account" in text
    assert "already belongs" not in fresh_text
    assert "Elsewhere Co" not in text  # nor does it name the other tenant
    token = link_token(message, "accept-invitation")

    status, body = _accept(app, token, "Two Homes")
    assert status == 409 and body["code"] == "account_exists", body
    assert outsider.email not in {m["email"] for m in _members(client).values()}

    # What the email says: once removed from the other tenant, the same link works.
    other_admin = make_session(make_member(elsewhere, Role.admin))
    assert _delete(make_client(app, other_admin), other_admin, outsider.membership_id)[0] == 204
    status, body = _accept(app, token, "Moved Over")
    assert status == 200, body
    joined = [m for m in _members(client).values() if m["email"] == outsider.email]
    assert len(joined) == 1 and joined[0]["name"] == "Moved Over"


@pytest.mark.parametrize("body", [{"email": "not-an-email", "role": "staff"},
                                  {"email": "ok@example.com", "role": "owner"},
                                  {"email": "ok@example.com"},
                                  {"email": "ok@example.com", "role": "staff", "name": "x"}])
def test_bad_invitations_are_400(app: Flask, team: tuple[LoggedIn, Member], body: dict) -> None:
    admin, _ = team
    response = make_client(app, admin).post("/api/v1/invitations", json=body,
                                            headers={"X-CSRF-Token": admin.csrf})
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["code"] == "validation_error"


@pytest.mark.usefixtures("worker")
def test_invitation_email_arrives_and_its_link_works_once(app: Flask, stack: LocalStack) -> None:
    tenant = make_tenant("Inviting Co")
    manager = make_session(make_member(tenant, Role.manager))
    client = make_client(app, manager)
    email = _email("invitee")
    created = _invite(client, manager, email, "staff")
    assert created.status_code == 201, created.get_json()

    message = wait_for_mail(stack, email, "invited")
    assert "Inviting Co" in str(message["Subject"])
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "http://portcullis.test/accept-invitation?token=" in text
    token = link_token(message, "accept-invitation")
    assert len(token) >= 43

    weak = make_client(app).post("/api/v1/invitations/accept",
                                 json={"token": token, "name": "N", "password": "password1234"})
    assert weak.status_code == 400 and weak.get_json()["code"] == "weak_password"
    status, body = _accept(app, token, "Invited Person")
    assert status == 200 and body == {}, body
    status, body = _accept(app, token, "Invited Person")
    assert status == 400 and body["code"] == "token_invalid"

    joined = [m for m in _members(client).values() if m["email"] == email]
    assert len(joined) == 1 and joined[0]["role"] == "staff"
    assert joined[0]["name"] == "Invited Person"
    login = make_client(app).post("/api/v1/auth/login", json={"email": email,
                                                           "password": NEW_PASSWORD})
    assert login.status_code == 200
    assert login.get_json() == {"status": "mfa_enrollment_required"}  # staff must enrol


def test_an_unknown_invitation_token_is_400(app: Flask, stack: LocalStack) -> None:
    status, body = _accept(app, "x" * 43)
    assert status == 400 and body["code"] == "token_invalid"


@pytest.mark.usefixtures("worker")
def test_an_expired_invitation_is_410(app: Flask, stack: LocalStack) -> None:
    tenant = make_tenant("Late Co")
    admin = make_session(make_member(tenant, Role.admin))
    email = _email("late")
    created = _invite(make_client(app, admin), admin, email, "viewonly")
    assert created.status_code == 201, created.get_json()
    token = link_token(wait_for_mail(stack, email, "invited"), "accept-invitation")
    with system_session() as db:
        db.execute(update(Invitation).where(Invitation.id == uuid.UUID(created.get_json()["id"]))
                   .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    status, body = _accept(app, token)
    assert status == 410 and body["code"] == "token_expired", body
    assert email not in {m["email"] for m in _members(make_client(app, admin)).values()}
