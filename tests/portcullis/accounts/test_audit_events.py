"""Every account, member and key action leaves its audit event, with the caller's address
and user agent, and never a secret; the chains still verify afterwards.

The scenarios run once per module (real worker, real mail sink) and each expected event is
then checked on its own. ``EXPECTED`` is the registry: ``test_every_action_has_a_test``
fails when ``portcullis.audit.actions.ACTIONS`` lists an action nothing here emits.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from devstack.stack import LocalStack
from portcullis.accounts.models import Role, SessionState, User
from portcullis.audit.actions import ACTIONS
from portcullis.audit.models import AuditEvent
from portcullis.audit.service import verify_chain
from portcullis.cli import main
from portcullis.db import system_session
from tests.support.authenticator import Authenticator, b64url
from tests.support.factories import make_job, make_member, make_passkey, make_session
from tests.support.mail import link_token, wait_for_mail
from tests.support.web import csrf_headers, make_client

IP = "192.0.2.41"
OTHER_IP = "192.0.2.42"
UA = "audit-events-test/1.0 (+https://example.com/agent)"
PASSWORD = "audit module passphrase 31"
NEW_PASSWORD = "audit module passphrase 32 renewed"
WRONG_PASSWORD = "not the passphrase 33 at all"
UNKNOWN_PASSWORD = "nobody has this passphrase 34"
INVITEE_PASSWORD = "invitee module passphrase 35"
WEBAUTHN = "/api/v1/auth/webauthn"


@dataclass
class World:
    """What the scenarios did: ids to find events by, and every secret they handled."""

    started: datetime
    secrets: list[str] = field(default_factory=list)
    tenant_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    ids: dict[str, str] = field(default_factory=dict)

    def secret(self, *values: str) -> None:
        for value in values:
            if value:
                self.secrets.append(value)


def _cookies(client: FlaskClient, world: World) -> None:
    for name in ("portcullis_session", "portcullis_csrf"):
        cookie = client.get_cookie(name)
        if cookie is not None:
            world.secret(cookie.value)


def _ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.get_json(silent=True)
    return response.get_json(silent=True) or {}


def _wrong_code(secret: str) -> str:
    totp = pyotp.TOTP(secret)
    valid = {totp.at(time.time() + 30 * offset) for offset in range(-2, 3)}
    return next(c for c in (f"{n:06d}" for n in range(100000, 200000, 7919)) if c not in valid)


# --------------------------------------------------------------------------- scenarios


@pytest.fixture(scope="module")
def world() -> World:
    return World(started=datetime.now(UTC) - timedelta(seconds=1))


@pytest.fixture(scope="module")
def account(app: Flask, stack: LocalStack, worker: object, world: World) -> World:
    """Signup to password reset, through the API as a browser would."""
    email = f"audit-owner-{uuid.uuid4().hex[:8]}@example.com"
    unknown = f"audit-nobody-{uuid.uuid4().hex[:8]}@example.com"
    world.secret(PASSWORD, NEW_PASSWORD, WRONG_PASSWORD, UNKNOWN_PASSWORD)
    browser = make_client(app, ip=IP, user_agent=UA)

    _ok(browser.post("/api/v1/auth/signup", json={
        "company_name": "Audit Trail Co", "name": "Owner", "email": email,
        "password": PASSWORD}), 202)
    with system_session() as db:
        user = db.scalars(select(User).where(User.email == email)).one()
        world.tenant_id, world.user_id = user.tenant_id, user.id
    verify_token = link_token(wait_for_mail(stack, email, "Confirm"), "verify-email")
    world.secret(verify_token)
    _ok(browser.post("/api/v1/auth/verify-email", json={"token": verify_token}))

    assert browser.post("/api/v1/auth/login", json={
        "email": email, "password": WRONG_PASSWORD}).status_code == 401
    assert browser.post("/api/v1/auth/login", json={
        "email": unknown, "password": UNKNOWN_PASSWORD}).status_code == 401

    login = _ok(browser.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}))
    assert login == {"status": "mfa_enrollment_required"}
    _cookies(browser, world)
    secret = _ok(browser.post("/api/v1/auth/mfa/enroll", headers=csrf_headers(browser)))["secret"]
    world.secret(secret)
    enrol_code = pyotp.TOTP(secret).now()
    codes = _ok(browser.post("/api/v1/auth/mfa/enroll/confirm", headers=csrf_headers(browser),
                             json={"code": enrol_code}))["recovery_codes"]
    world.secret(enrol_code, *codes, *(c.replace("-", "") for c in codes))
    _ok(browser.post("/api/v1/auth/logout", headers=csrf_headers(browser)), 204)

    assert _ok(browser.post("/api/v1/auth/login", json={
        "email": email, "password": PASSWORD})) == {"status": "mfa_required"}
    _cookies(browser, world)
    wrong = _wrong_code(secret)
    world.secret(wrong)
    assert browser.post("/api/v1/auth/mfa/verify", headers=csrf_headers(browser),
                        json={"code": wrong}).status_code == 401
    next_code = pyotp.TOTP(secret).at(time.time() + 30)  # the enrolment used this step
    world.secret(next_code)
    _ok(browser.post("/api/v1/auth/mfa/verify", headers=csrf_headers(browser),
                     json={"code": next_code}))

    phone = make_client(app, ip=IP, user_agent=UA)
    _ok(phone.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}))
    _cookies(phone, world)
    _ok(phone.post("/api/v1/auth/mfa/verify", headers=csrf_headers(phone), json={"code": codes[0]}))
    sessions = _ok(browser.get("/api/v1/auth/sessions"))["items"]
    phone_session = next(s["id"] for s in sessions if not s["current"])
    world.ids["revoked_session"] = phone_session
    _ok(browser.delete(f"/api/v1/auth/sessions/{phone_session}",
                       headers=csrf_headers(browser)), 204)
    assert phone.get("/api/v1/auth/me").status_code == 401

    _ok(browser.post("/api/v1/auth/password/forgot", json={"email": email}), 202)
    reset_token = link_token(wait_for_mail(stack, email, "Reset"), "reset-password")
    world.secret(reset_token)
    _ok(browser.post("/api/v1/auth/password/reset",
                     json={"token": reset_token, "password": NEW_PASSWORD}))
    assert browser.get("/api/v1/auth/me").status_code == 401  # reset ended every session
    return world


def _admin_client(app: Flask, world: World, ip: str = IP) -> tuple[FlaskClient, str]:
    """A second admin of the scenario's tenant, with a session made directly."""
    assert world.tenant_id is not None
    if "admin_cookie" not in world.ids:
        admin = make_session(make_member(world.tenant_id, Role.admin))
        world.ids["admin_cookie"], world.ids["admin_csrf"] = admin.cookie, admin.csrf
        world.ids["admin_user"] = str(admin.member.user_id)
        world.secret(admin.cookie, admin.csrf)
    client = make_client(app, ip=ip, user_agent=UA)
    client.set_cookie("portcullis_session", world.ids["admin_cookie"], domain="localhost")
    client.set_cookie("portcullis_csrf", world.ids["admin_csrf"], domain="localhost")
    return client, world.ids["admin_csrf"]


@pytest.fixture(scope="module")
def team(app: Flask, stack: LocalStack, account: World) -> World:
    """Invite, join, change role and status, remove."""
    world = account
    client, csrf = _admin_client(app, world)
    email = f"audit-invitee-{uuid.uuid4().hex[:8]}@example.com"
    invitation = _ok(client.post("/api/v1/invitations", headers={"X-CSRF-Token": csrf},
                                 json={"email": email, "role": "staff"}), 201)
    world.ids["invitation"] = invitation["id"]
    token = link_token(wait_for_mail(stack, email, "invited"), "accept-invitation")
    world.secret(token, INVITEE_PASSWORD)
    _ok(make_client(app, ip=IP, user_agent=UA).post("/api/v1/invitations/accept", json={
        "token": token, "name": "Invitee", "password": INVITEE_PASSWORD}))
    members = _ok(client.get("/api/v1/members?limit=200"))["items"]
    member_id = next(m["id"] for m in members if m["email"] == email)
    world.ids["member"] = member_id
    _ok(client.patch(f"/api/v1/members/{member_id}", headers={"X-CSRF-Token": csrf},
                     json={"role": "viewonly"}))
    _ok(client.patch(f"/api/v1/members/{member_id}", headers={"X-CSRF-Token": csrf},
                     json={"status": "suspended"}))
    _ok(client.delete(f"/api/v1/members/{member_id}", headers={"X-CSRF-Token": csrf}), 204)
    return world


@pytest.fixture(scope="module")
def keys(app: Flask, account: World) -> World:
    """Create an access key, use it from two addresses, revoke it."""
    world = account
    client, csrf = _admin_client(app, world)
    created = _ok(client.post("/api/v1/access-keys", headers={"X-CSRF-Token": csrf}, json={
        "name": "audit key", "scopes": ["jobs:read", "audit:read"], "expires_in_days": 7}), 201)
    world.ids["key"] = created["id"]
    world.secret(created["key"], created["key"].removeprefix("pck_"))
    assert world.tenant_id is not None
    job_id = make_job(world.tenant_id, created_by_user_id=uuid.UUID(world.ids["admin_user"]))
    bearer = {"Authorization": f"Bearer {created['key']}"}
    _ok(make_client(app, ip=IP, user_agent=UA).get(f"/api/v1/jobs/{job_id}", headers=bearer))
    _ok(make_client(app, ip=OTHER_IP, user_agent=UA).get(f"/api/v1/jobs/{job_id}", headers=bearer))
    _ok(client.delete(f"/api/v1/access-keys/{created['id']}", headers={"X-CSRF-Token": csrf}),
        204)
    return world


@pytest.fixture(scope="module")
def lockout(app: Flask, account: World) -> World:
    """Ten wrong codes over two logins lock one member's second factor."""
    world = account
    assert world.tenant_id is not None
    member = make_member(world.tenant_id, Role.staff)
    assert member.totp_secret is not None
    world.ids["locked_user"] = str(member.user_id)
    world.secret(member.totp_secret)
    for _ in range(2):  # five wrong codes end a session
        client = make_client(app, ip=IP, user_agent=UA)
        assert _ok(client.post("/api/v1/auth/login", json={
            "email": member.email, "password": member.password})) == {"status": "mfa_required"}
        _cookies(client, world)
        for _ in range(5):
            wrong = _wrong_code(member.totp_secret)
            world.secret(wrong)
            assert client.post("/api/v1/auth/mfa/verify", headers=csrf_headers(client),
                               json={"code": wrong}).status_code == 401
    return world


@pytest.fixture(scope="module")
def passkeys(app: Flask, account: World) -> World:
    """A passkey completes an enrolment, signs in, fails, shows a counter gone back; a spare
    one is removed."""
    world = account
    assert world.tenant_id is not None
    member = make_member(world.tenant_id, Role.staff, mfa=False)
    enrolling = make_session(member, SessionState.mfa_enrollment)
    key = Authenticator()
    world.secret(enrolling.cookie, enrolling.csrf, member.password, b64url(key.cose_public_key()))
    browser = make_client(app, enrolling, ip=IP, user_agent=UA)
    headers = {"X-CSRF-Token": enrolling.csrf}
    options = _ok(browser.post(f"{WEBAUTHN}/register/options", headers=headers))["publicKey"]
    world.secret(options["challenge"])
    created = _ok(browser.post(f"{WEBAUTHN}/register", headers=headers, json={
        "name": "audit passkey", "credential": key.register(options)}), 201)
    world.ids["passkey"] = created["id"]

    def sign_in(tamper: bool = False, counter: int | None = None) -> int:
        client = make_client(app, ip=IP, user_agent=UA)
        assert _ok(client.post("/api/v1/auth/login", json={
            "email": member.email, "password": member.password})) == {"status": "mfa_required"}
        _cookies(client, world)
        options = _ok(client.post(f"{WEBAUTHN}/authenticate/options",
                                  headers=csrf_headers(client)))["publicKey"]
        world.secret(options["challenge"])
        return client.post(f"{WEBAUTHN}/authenticate", headers=csrf_headers(client), json={
            "credential": key.assertion(options, tamper=tamper, counter=counter)}).status_code

    assert sign_in() == 200  # the counter is now 1
    assert sign_in(tamper=True) == 401
    assert sign_in(counter=1) == 401
    spare = make_passkey(member, name="spare passkey")
    world.ids["spare_passkey"] = str(spare.id)
    full = make_session(member)
    world.secret(full.cookie, full.csrf)
    _ok(make_client(app, full, ip=IP, user_agent=UA).delete(
        f"{WEBAUTHN}/credentials/{spare.id}", headers={"X-CSRF-Token": full.csrf}), 204)
    return world


@pytest.fixture(scope="module")
def operator(stack: LocalStack, world: World) -> World:
    name = f"audit-ops-{uuid.uuid4().hex[:8]}"
    result = CliRunner().invoke(main, ["operator-keys", "create", "--name", name])
    assert result.exit_code == 0, result.output
    secret = result.output.strip().splitlines()[-1]
    assert secret.startswith("pco_")
    world.secret(secret, secret.removeprefix("pco_"))
    world.ids["operator_key_name"] = name
    return world


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Expect:
    action: str
    scenario: str  # the module fixture that performs it
    in_tenant: bool = True  # False: the system chain (tenant_id NULL)
    target: Callable[[World], tuple[str, str | None]] | None = None
    details: dict | None = None  # a subset the details must hold
    ip: str | None = IP
    user_agent: str | None = UA
    match: Callable[[AuditEvent, World], bool] | None = None


def _user(w: World) -> tuple[str, str | None]:
    return "user", str(w.user_id)


def _id(kind: str, key: str) -> Callable[[World], tuple[str, str | None]]:
    return lambda w: (kind, w.ids[key])


EXPECTED: dict[str, Expect] = {
    "auth.signup": Expect("auth.signup", "account",
                          target=lambda w: ("tenant", str(w.tenant_id)),
                          details={"company_name": "Audit Trail Co"}),
    "auth.email_verified": Expect("auth.email_verified", "account", target=_user),
    "auth.login_succeeded": Expect("auth.login_succeeded", "account"),
    "auth.login_failed/wrong_password": Expect(
        "auth.login_failed", "account", target=_user, details={"reason": "wrong_password"}),
    "auth.login_failed/unknown_email": Expect(
        "auth.login_failed", "account", in_tenant=False, details={"reason": "unknown_email"}),
    "auth.mfa_enrolled": Expect("auth.mfa_enrolled", "account", target=_user),
    "auth.mfa_succeeded": Expect("auth.mfa_succeeded", "account"),
    "auth.mfa_failed": Expect("auth.mfa_failed", "account", details={"failures": 1}),
    "auth.recovery_code_used": Expect("auth.recovery_code_used", "account"),
    "auth.mfa_locked": Expect("auth.mfa_locked", "lockout", target=_id("user", "locked_user"),
                              details={"failures": 10}),
    "auth.logout": Expect("auth.logout", "account"),
    "auth.password_reset_requested": Expect("auth.password_reset_requested", "account",
                                            target=_user),
    "auth.password_reset": Expect("auth.password_reset", "account", target=_user),
    "auth.session_revoked": Expect("auth.session_revoked", "account",
                                   target=_id("session", "revoked_session")),
    "member.invited": Expect("member.invited", "team", target=_id("invitation", "invitation"),
                             details={"role": "staff"}),
    "member.joined": Expect("member.joined", "team", target=_id("member", "member"),
                            details={"role": "staff"}),
    "member.role_changed": Expect("member.role_changed", "team", target=_id("member", "member"),
                                  details={"from": "staff", "to": "viewonly"}),
    "member.status_changed": Expect("member.status_changed", "team",
                                    target=_id("member", "member"),
                                    details={"from": "active", "to": "suspended"}),
    "member.removed": Expect("member.removed", "team", target=_id("member", "member")),
    "access_key.created": Expect("access_key.created", "keys",
                                 target=_id("access_key", "key"),
                                 details={"name": "audit key"}),
    "access_key.used_from_new_ip": Expect("access_key.used_from_new_ip", "keys",
                                          target=_id("access_key", "key"), ip=OTHER_IP,
                                          details={"previous_ip": IP}),
    "access_key.revoked": Expect("access_key.revoked", "keys", target=_id("access_key", "key")),
    "auth.webauthn_registered": Expect(
        "auth.webauthn_registered", "passkeys", target=_id("passkey", "passkey"),
        details={"name": "audit passkey", "completes_enrolment": True}),
    "auth.webauthn_succeeded": Expect(
        "auth.webauthn_succeeded", "passkeys",
        match=lambda e, w: (e.details or {}).get("webauthn_id") == w.ids["passkey"]),
    "auth.webauthn_failed": Expect("auth.webauthn_failed", "passkeys",
                                   details={"step": "authentication", "reason": "not_verified"}),
    "auth.webauthn_counter_regressed": Expect(
        "auth.webauthn_counter_regressed", "passkeys", target=_id("passkey", "passkey"),
        details={"stored_count": 1, "presented_count": 1}),
    "auth.webauthn_removed": Expect("auth.webauthn_removed", "passkeys",
                                    target=_id("passkey", "spare_passkey"),
                                    details={"name": "spare passkey"}),
    # The CLI has no client address or user agent.
    "operator_key.created": Expect(
        "operator_key.created", "operator", in_tenant=False, ip=None, user_agent=None,
        match=lambda e, w: (e.details or {}).get("name") == w.ids["operator_key_name"]),
}


# This module covers the identity and access area; other areas (audit exports, tenants,
# alerts...) keep their own registries.
AREA = ("auth.", "member.", "access_key.", "operator_key.")


def test_every_action_has_a_test() -> None:
    covered = {expect.action for expect in EXPECTED.values()}
    ours = {action for action in ACTIONS if action.startswith(AREA)}
    missing = sorted(ours - covered)
    assert not missing, f"audit actions of this area no test emits: {missing}"
    unknown = sorted(covered - set(ACTIONS))
    assert not unknown, f"tested actions missing from ACTIONS: {unknown}"
    assert len(ours) >= 21


def _events(world: World, expect: Expect) -> list[AuditEvent]:
    with system_session() as db:
        stmt = select(AuditEvent).where(AuditEvent.action == expect.action,
                                        AuditEvent.occurred_at >= world.started)
        if expect.in_tenant:
            stmt = stmt.where(AuditEvent.tenant_id == world.tenant_id)
        else:
            stmt = stmt.where(AuditEvent.tenant_id.is_(None))
        if expect.target is not None:
            kind, target_id = expect.target(world)
            stmt = stmt.where(AuditEvent.target_type == kind, AuditEvent.target_id == target_id)
        found = list(db.scalars(stmt.order_by(AuditEvent.seq)))
    if expect.details:
        found = [e for e in found if (e.details or {}).items() >= expect.details.items()]
    if expect.match:
        found = [e for e in found if expect.match(e, world)]
    if not expect.in_tenant and expect.ip:  # the system chain is shared: ours by address
        found = [e for e in found if e.ip is not None and str(e.ip) == expect.ip]
    return found


def _leaks(world: World, event: AuditEvent) -> list[str]:
    text = json.dumps(event.details or {}) + "\n" + (event.user_agent or "")
    return [s for s in world.secrets if s in text]


@pytest.mark.parametrize("case", list(EXPECTED))
def test_action_is_audited(request: pytest.FixtureRequest, case: str) -> None:
    expect = EXPECTED[case]
    world: World = request.getfixturevalue(expect.scenario)
    events = _events(world, expect)
    assert events, f"no {expect.action} event ({case})"
    for event in events:
        assert event.severity == str(ACTIONS[expect.action])
        assert (str(event.ip) if event.ip is not None else None) == expect.ip, case
        assert event.user_agent == expect.user_agent, case
        assert event.actor_type, case
        assert not _leaks(world, event), f"{case} holds a secret in details or user agent"
        if expect.in_tenant:
            assert event.tenant_id == world.tenant_id
        else:
            assert event.tenant_id is None


def test_unknown_email_failure_names_no_user(request: pytest.FixtureRequest) -> None:
    world: World = request.getfixturevalue("account")
    events = _events(world, EXPECTED["auth.login_failed/unknown_email"])
    for event in events:
        assert event.actor_type == "anonymous" and event.actor_id is None
        assert event.target_id is None
        assert UNKNOWN_PASSWORD not in json.dumps(event.details)


def test_the_actor_is_who_acted(team: World, keys: World) -> None:
    admin = team.ids["admin_user"]
    checks = {"member.invited": admin, "member.role_changed": admin,
              "member.status_changed": admin, "member.removed": admin,
              "access_key.created": admin, "access_key.revoked": admin}
    for action, actor in checks.items():
        events = _events(team, EXPECTED[action])
        assert [(e.actor_type, e.actor_id) for e in events] == [("user", actor)], action


# --------------------------------------------------------------------------- no secrets


@pytest.fixture(scope="module")
def everything(account: World, team: World, keys: World, operator: World,
               passkeys: World) -> World:
    return account


def test_no_audit_row_holds_a_secret_used_here(everything: World) -> None:
    world = everything
    assert len(world.secrets) >= 25
    with system_session() as db:
        rows = db.execute(select(AuditEvent.id, AuditEvent.action, AuditEvent.details,
                                 AuditEvent.user_agent)).all()
    digests = [hashlib.sha256(s.encode()).hexdigest() for s in world.secrets]
    for row in rows:
        text = json.dumps(row.details or {}) + "\n" + (row.user_agent or "")
        leaked = [s for s in world.secrets if s in text] + [d for d in digests if d in text]
        assert not leaked, f"{row.action} {row.id} holds a secret"
        assert not re.search(r"\bpc[ko]_[A-Za-z0-9_-]{30,}", text), row.action


def test_the_chains_still_verify(everything: World) -> None:
    world = everything
    result = CliRunner().invoke(main, ["audit", "verify", "--tenant", str(world.tenant_id)])
    assert result.exit_code == 0, result.output
    assert "1 chain(s)" in result.output
    with system_session() as db:
        assert verify_chain(db, None) is None  # the system chain (tenant_id NULL)
