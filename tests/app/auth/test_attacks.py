"""Attacks on authentication: forged and replayed cookies, CSRF, MFA bypasses, credentials of
suspended or removed members, access and operator keys out of bounds, other tenants'
objects, and login answers that could tell an attacker which emails exist."""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from werkzeug.test import TestResponse

from config import get_settings
from portcullis.access_keys.models import AccessKey, OperatorKey
from portcullis.accounts.models import Membership, Role, SessionState, User, UserSession
from portcullis.db import system_session, tenant_session
from tests.support.factories import (
    LoggedIn,
    Member,
    make_access_key,
    make_job,
    make_member,
    make_operator_key,
    make_session,
    make_tenant,
)
from tests.support.web import csrf_headers, log_in, make_client, problem_code

pytestmark = pytest.mark.usefixtures("stack")

ME = "/api/v1/auth/me"
MEMBERS = "/api/v1/members"
LOGIN = "/api/v1/auth/login"
LOGOUT = "/api/v1/auth/logout"
SESSIONS = "/api/v1/auth/sessions"
MFA_VERIFY = "/api/v1/auth/mfa/verify"


# --------------------------------------------------------------------------- helpers

def _with_cookie(app: Flask, token: str, csrf: str | None = None) -> FlaskClient:
    client = make_client(app)
    client.set_cookie("portcullis_session", token, domain="localhost")
    if csrf is not None:
        client.set_cookie("portcullis_csrf", csrf, domain="localhost")
    return client


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _assert_refused(app: Flask, token: str) -> None:
    """The forged cookie authenticates nobody, on every kind of authenticated route."""
    for path in (ME, MEMBERS):
        response = _with_cookie(app, token).get(path)
        assert response.status_code == 401, (path, response.get_json())
        assert problem_code(response) == "not_authenticated"


def _assert_accepted(app: Flask, token: str) -> None:
    response = _with_cookie(app, token).get(ME)
    assert response.status_code == 200, response.get_json()


def _without_request_id(response: TestResponse) -> bytes:
    body = response.get_json()
    return response.get_data().replace(body["request_id"].encode(), b"<request-id>")


def _api_key(app: Flask, admin: LoggedIn, scopes: list[str]) -> tuple[str, str]:
    response = make_client(app, admin).post("/api/v1/access-keys", headers=csrf_headers(admin),
                                            json={"name": "attack-test", "scopes": scopes,
                                                  "expires_in_days": 30})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    return body["id"], body["key"]


# --------------------------------------------------------------------------- forged JWTs

def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _jwt_secret() -> str:
    return get_settings().JWT_SECRET.get_secret_value()


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, _jwt_secret(), algorithms=["HS256"])


def _sign(payload: dict[str, Any], key: str | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key or _jwt_secret(), algorithm=algorithm)


def _assemble(header: dict[str, Any], payload: dict[str, Any], signature: str) -> str:
    raw = [json.dumps(part, separators=(",", ":")).encode() for part in (header, payload)]
    return f"{_b64(raw[0])}.{_b64(raw[1])}.{signature}"


@pytest.fixture
def attacker() -> LoggedIn:
    return make_session(make_member(make_tenant("Attacker Co"), Role.admin))


@pytest.fixture
def victim() -> LoggedIn:
    return make_session(make_member(make_tenant("Victim Co"), Role.admin))


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_an_unsigned_alg_none_token_is_refused(app: Flask, attacker: LoggedIn, alg: str) -> None:
    _assert_accepted(app, attacker.cookie)
    claims = _claims(attacker.cookie)
    _assert_refused(app, _assemble({"alg": alg, "typ": "JWT"}, claims, ""))
    _assert_refused(app, jwt.encode(claims, key=None, algorithm="none"))


def test_a_token_signed_with_another_key_is_refused(app: Flask, attacker: LoggedIn) -> None:
    _assert_accepted(app, attacker.cookie)
    claims = _claims(attacker.cookie)
    _assert_refused(app, _sign(claims, key=secrets.token_urlsafe(48)))
    _assert_refused(app, _sign(claims, key="x" * 64))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_an_algorithm_outside_the_allow_list_is_refused(app: Flask, attacker: LoggedIn,
                                                       algorithm: str) -> None:
    # Even with the right key: only HS256 is accepted.
    _assert_refused(app, _sign(_claims(attacker.cookie), algorithm=algorithm))


def test_a_forged_signature_is_refused(app: Flask, attacker: LoggedIn) -> None:
    header, payload, signature = attacker.cookie.split(".")
    _assert_refused(app, f"{header}.{payload}.")
    _assert_refused(app, f"{header}.{payload}.{signature[:-4]}AAAA")
    _assert_refused(app, f"{header}.{payload}")
    _assert_refused(app, "not-a-jwt")


_VICTIM_CLAIM = {"tid": lambda v: str(v.member.tenant_id), "sub": lambda v: str(v.member.user_id),
                 "sid": lambda v: str(v.session_id)}


@pytest.mark.parametrize("claims", [("tid",), ("sub",), ("sid",), ("tid", "sub"),
                                    ("tid", "sub", "sid")])
def test_edited_claims_resigned_with_a_wrong_key_are_refused(
        app: Flask, attacker: LoggedIn, victim: LoggedIn, claims: tuple[str, ...]) -> None:
    _assert_accepted(app, victim.cookie)
    payload = _claims(attacker.cookie) | {c: _VICTIM_CLAIM[c](victim) for c in claims}
    _assert_refused(app, _sign(payload, key=secrets.token_urlsafe(48)))


@pytest.mark.parametrize("claims", [("tid",), ("sub",), ("sid",), ("tid", "sub"),
                                    ("tid", "sub", "sid")])
def test_edited_claims_keeping_the_old_signature_are_refused(
        app: Flask, attacker: LoggedIn, victim: LoggedIn, claims: tuple[str, ...]) -> None:
    header, _, signature = attacker.cookie.split(".")
    payload = _claims(attacker.cookie) | {c: _VICTIM_CLAIM[c](victim) for c in claims}
    edited = _b64(json.dumps(payload, separators=(",", ":")).encode())
    _assert_refused(app, f"{header}.{edited}.{signature}")
    # ... and with the signature dropped or the header switched to "none".
    _assert_refused(app, f"{header}.{edited}.")
    _assert_refused(app, _assemble({"alg": "none", "typ": "JWT"}, payload, ""))


def test_an_expired_token_is_refused_though_its_session_lives(app: Flask,
                                                             attacker: LoggedIn) -> None:
    now = int(time.time())
    claims = _claims(attacker.cookie)
    _assert_accepted(app, _sign(claims | {"iat": now - 3600, "exp": now + 600}))
    _assert_refused(app, _sign(claims | {"iat": now - 3600, "exp": now - 60}))


@pytest.mark.parametrize("missing", ["sub", "tid", "sid", "jti", "iat", "exp"])
def test_a_token_missing_a_required_claim_is_refused(app: Flask, attacker: LoggedIn,
                                                     missing: str) -> None:
    claims = _claims(attacker.cookie)
    _assert_accepted(app, _sign(claims | {"jti": str(uuid.uuid4())}))
    _assert_refused(app, _sign({k: v for k, v in claims.items() if k != missing}))


def test_a_token_naming_another_users_session_is_refused(app: Flask) -> None:
    """Even correctly signed: the session row must belong to the user and tenant claimed."""
    tenant = make_tenant()
    mine = make_session(make_member(tenant, Role.staff))
    theirs = make_session(make_member(tenant, Role.admin))
    elsewhere = make_session(make_member(make_tenant(), Role.admin))
    claims = _claims(mine.cookie)
    _assert_accepted(app, _sign(claims))
    _assert_refused(app, _sign(claims | {"sid": str(theirs.session_id)}))
    _assert_refused(app, _sign(claims | {"sub": str(theirs.member.user_id)}))
    _assert_refused(app, _sign(claims | {"tid": str(elsewhere.member.tenant_id)}))
    _assert_refused(app, _sign(claims | {"tid": str(elsewhere.member.tenant_id),
                                         "sid": str(elsewhere.session_id)}))
    _assert_refused(app, _sign(claims | {"sid": str(uuid.uuid4())}))
    _assert_refused(app, _sign(claims | {"sub": "not-a-uuid"}))


# --------------------------------------------------------------------------- replay

def test_a_cookie_replayed_after_logout_is_401(app: Flask) -> None:
    member = make_member(make_tenant(), Role.viewonly)
    client = make_client(app)
    login = client.post(LOGIN, json={"email": member.email, "password": member.password})
    assert login.status_code == 200 and login.get_json() == {"status": "ok"}
    session_cookie = client.get_cookie("portcullis_session")
    csrf_cookie = client.get_cookie("portcullis_csrf")
    assert session_cookie is not None and csrf_cookie is not None
    token, csrf = session_cookie.value, csrf_cookie.value
    assert client.get(ME).status_code == 200

    logout = client.post(LOGOUT, headers={"X-CSRF-Token": csrf})
    assert logout.status_code == 204
    replay = _with_cookie(app, token, csrf)
    response = replay.get(ME)
    assert response.status_code == 401 and problem_code(response) == "not_authenticated"
    assert replay.get(MEMBERS).status_code == 401
    assert replay.post(LOGOUT, headers={"X-CSRF-Token": csrf}).status_code == 401


def test_a_cookie_of_a_revoked_session_is_401(app: Flask) -> None:
    member = make_member(make_tenant(), Role.admin)
    current, other = make_session(member), make_session(member)
    client = make_client(app, current)
    listed = {item["id"] for item in client.get(SESSIONS).get_json()["items"]}
    assert {str(current.session_id), str(other.session_id)} <= listed
    assert make_client(app, other).get(ME).status_code == 200

    response = client.delete(f"{SESSIONS}/{other.session_id}", headers=csrf_headers(current))
    assert response.status_code == 204
    refused = make_client(app, other).get(ME)
    assert refused.status_code == 401 and problem_code(refused) == "not_authenticated"
    assert client.get(ME).status_code == 200
    listed = {item["id"] for item in client.get(SESSIONS).get_json()["items"]}
    assert str(other.session_id) not in listed


def test_revoking_someone_elses_session_is_404(app: Flask) -> None:
    tenant = make_tenant()
    me = make_session(make_member(tenant, Role.admin))
    colleague = make_session(make_member(tenant, Role.staff))
    stranger = make_session(make_member(make_tenant(), Role.admin))
    client = make_client(app, me)
    unknown = client.delete(f"{SESSIONS}/{uuid.uuid4()}", headers=csrf_headers(me))
    assert unknown.status_code == 404
    for target in (colleague, stranger):
        response = client.delete(f"{SESSIONS}/{target.session_id}", headers=csrf_headers(me))
        assert response.status_code == 404 and problem_code(response) == "not_found"
        assert _without_request_id(response) == _without_request_id(unknown)
        assert make_client(app, target).get(ME).status_code == 200  # untouched


@pytest.mark.parametrize("change", ["idle", "absolute", "expired_row"])
def test_a_valid_cookie_of_a_timed_out_session_is_401(app: Flask, change: str) -> None:
    """The token is still valid; the server-side row decides (30 min idle, 12 h in all)."""
    who = make_session(make_member(make_tenant(), Role.admin))
    assert make_client(app, who).get(ME).status_code == 200
    now = datetime.now(UTC)
    values = {"idle": {"last_seen_at": now - timedelta(minutes=30, seconds=5)},
              "absolute": {"created_at": now - timedelta(hours=12, seconds=5)},
              "expired_row": {"expires_at": now - timedelta(seconds=5)}}[change]
    with tenant_session(who.member.tenant_id) as db:
        db.execute(update(UserSession).where(UserSession.id == who.session_id).values(**values))
    response = make_client(app, who).get(ME)
    assert response.status_code == 401 and problem_code(response) == "not_authenticated"


# --------------------------------------------------------------------------- CSRF

def _revoke_other(app: Flask, who: LoggedIn, other: LoggedIn,
                  headers: dict[str, str], csrf_cookie: str | None = None) -> TestResponse:
    client = make_client(app, who)
    if csrf_cookie is not None:
        client.set_cookie("portcullis_csrf", csrf_cookie, domain="localhost")
    return client.delete(f"{SESSIONS}/{other.session_id}", headers=headers)


def test_an_unsafe_cookie_request_without_the_csrf_header_is_403(app: Flask) -> None:
    member = make_member(make_tenant(), Role.admin)
    me, other = make_session(member), make_session(member)
    response = _revoke_other(app, me, other, {})
    assert response.status_code == 403 and problem_code(response) == "csrf_failed"
    assert make_client(app, other).get(ME).status_code == 200  # nothing happened
    refused = make_client(app, me).post(LOGOUT)
    assert refused.status_code == 403 and problem_code(refused) == "csrf_failed"
    assert make_client(app, me).get(ME).status_code == 200  # the logout did not happen


@pytest.mark.parametrize("header", ["", "x", "0" * 64, "a" * 64])
def test_a_wrong_csrf_token_is_403(app: Flask, header: str) -> None:
    member = make_member(make_tenant(), Role.admin)
    me, other = make_session(member), make_session(member)
    response = _revoke_other(app, me, other, {"X-CSRF-Token": header})
    assert response.status_code == 403 and problem_code(response) == "csrf_failed"
    assert make_client(app, other).get(ME).status_code == 200


def test_a_csrf_token_of_another_session_is_403(app: Flask) -> None:
    member = make_member(make_tenant(), Role.admin)
    me, other = make_session(member), make_session(member)
    stranger = make_session(make_member(make_tenant(), Role.admin))
    for foreign in (other.csrf, stranger.csrf):
        # The foreign token in the header only, and in both header and cookie (a planted
        # cookie): neither passes, since the token is bound to the session.
        for cookie in (None, foreign):
            response = _revoke_other(app, me, other, {"X-CSRF-Token": foreign}, cookie)
            assert response.status_code == 403 and problem_code(response) == "csrf_failed"
    assert make_client(app, other).get(ME).status_code == 200
    allowed = _revoke_other(app, me, other, csrf_headers(me))
    assert allowed.status_code == 204


def test_access_keys_need_no_csrf_token(app: Flask) -> None:
    admin = make_session(make_member(make_tenant(), Role.admin))
    _, key = _api_key(app, admin, ["audit:read"])
    now = datetime.now(UTC)
    body = {"since": (now - timedelta(days=1)).isoformat(), "until": now.isoformat(),
            "format": "jsonl"}
    # The same unsafe route: a cookie needs the token, a key does not.
    by_cookie = make_client(app, admin).post("/api/v1/audit-exports", json=body)
    assert by_cookie.status_code == 403 and problem_code(by_cookie) == "csrf_failed"
    by_key = make_client(app).post("/api/v1/audit-exports", json=body, headers=_bearer(key))
    assert by_key.status_code == 202, by_key.get_json()


# --------------------------------------------------------------------------- cookies

def _set_cookies(response: TestResponse) -> dict[str, tuple[str, dict[str, str | None]]]:
    cookies: dict[str, tuple[str, dict[str, str | None]]] = {}
    for header in response.headers.getlist("Set-Cookie"):
        first, *attributes = [part.strip() for part in header.split(";")]
        name, _, value = first.partition("=")
        flags: dict[str, str | None] = {}
        for attribute in attributes:
            key, eq, val = attribute.partition("=")
            flags[key.strip().lower()] = val.strip() if eq else None
        cookies[name] = (value, flags)
    return cookies


def test_login_cookie_flags(app: Flask) -> None:
    member = make_member(make_tenant(), Role.viewonly)
    response = make_client(app).post(LOGIN, json={"email": member.email,
                                                  "password": member.password})
    assert response.status_code == 200
    cookies = _set_cookies(response)
    assert set(cookies) >= {"portcullis_session", "portcullis_csrf"}

    token, flags = cookies["portcullis_session"]
    assert token.count(".") == 2
    assert "httponly" in flags
    assert "secure" in flags  # PORTCULLIS_ENV=test: only development may drop it
    assert flags.get("samesite") == "Strict"
    assert flags.get("path") == "/"

    csrf, flags = cookies["portcullis_csrf"]
    assert csrf
    assert "httponly" not in flags  # the page's script must read it
    assert "secure" in flags
    assert flags.get("samesite") == "Strict"
    assert flags.get("path") == "/"


# --------------------------------------------------------------------------- MFA

def _verify(app: Flask, who: LoggedIn, code: str) -> TestResponse:
    return make_client(app, who).post(MFA_VERIFY, json={"code": code}, headers=csrf_headers(who))


def _state(app: Flask, who: LoggedIn) -> str | None:
    response = make_client(app, who).get(ME)
    return response.get_json()["session"] if response.status_code == 200 else None


def test_a_totp_code_is_accepted_once(app: Flask) -> None:
    member = make_member(make_tenant(), Role.admin)
    first = make_session(member, SessionState.mfa_pending)
    second = make_session(member, SessionState.mfa_pending)
    code = member.totp_code()
    assert _verify(app, first, code).status_code == 200
    assert _state(app, first) == "full"

    replay = _verify(app, second, code)
    assert replay.status_code == 401 and problem_code(replay) == "invalid_mfa_code"
    assert _state(app, second) == "mfa_pending"
    assert make_client(app, second).get(MEMBERS).status_code == 403


def test_an_older_code_is_refused_after_a_newer_one(app: Flask) -> None:
    member = make_member(make_tenant(), Role.admin)
    newer, older, oldest = member.totp_code(1), member.totp_code(0), member.totp_code(-1)
    sessions = [make_session(member, SessionState.mfa_pending) for _ in range(3)]
    assert _verify(app, sessions[0], newer).status_code == 200
    for session, code in ((sessions[1], older), (sessions[2], oldest)):
        response = _verify(app, session, code)
        assert response.status_code == 401 and problem_code(response) == "invalid_mfa_code"
        assert _state(app, session) == "mfa_pending"


def _enrol(app: Flask, member: Member) -> list[str]:
    """Enrol TOTP through the API; returns the recovery codes."""
    enrolling = make_session(member, SessionState.mfa_enrollment)
    client = make_client(app, enrolling)
    started = client.post("/api/v1/auth/mfa/enroll", headers=csrf_headers(enrolling))
    assert started.status_code == 200, started.get_json()
    member.totp_secret = started.get_json()["secret"]
    confirmed = client.post("/api/v1/auth/mfa/enroll/confirm", headers=csrf_headers(enrolling),
                            json={"code": pyotp.TOTP(member.totp_secret).now()})
    assert confirmed.status_code == 200, confirmed.get_json()
    return confirmed.get_json()["recovery_codes"]


def test_a_recovery_code_works_once(app: Flask) -> None:
    member = make_member(make_tenant(), Role.admin, mfa=False)
    codes = _enrol(app, member)
    first = make_session(member, SessionState.mfa_pending)
    assert _verify(app, first, codes[0]).status_code == 200
    assert _state(app, first) == "full"

    second = make_session(member, SessionState.mfa_pending)
    for variant in (codes[0], codes[0].upper(), codes[0].replace("-", "")):
        reused = _verify(app, second, variant)
        assert reused.status_code == 401 and problem_code(reused) == "invalid_mfa_code"
    assert _state(app, second) == "mfa_pending"
    assert _verify(app, second, codes[1]).status_code == 200


def test_five_wrong_codes_end_the_restricted_session(app: Flask) -> None:
    member = make_member(make_tenant(), Role.admin)
    pending = make_session(member, SessionState.mfa_pending)
    for _ in range(5):
        response = _verify(app, pending, member.wrong_totp_code())
        assert response.status_code == 401 and problem_code(response) == "invalid_mfa_code"
    assert make_client(app, pending).get(ME).status_code == 401
    sixth = _verify(app, pending, member.totp_code())  # even the right code is too late
    assert sixth.status_code == 401 and problem_code(sixth) == "not_authenticated"
    # Another login still works: the code was not consumed by the dead session.
    fresh = make_session(member, SessionState.mfa_pending)
    assert _verify(app, fresh, member.totp_code()).status_code == 200


def test_a_pending_session_cannot_reenrol(app: Flask) -> None:
    """Else anyone with the password could replace the TOTP secret and skip the code."""
    member = make_member(make_tenant(), Role.admin)
    pending = make_session(member, SessionState.mfa_pending)
    client = make_client(app, pending)
    enrol = client.post("/api/v1/auth/mfa/enroll", headers=csrf_headers(pending))
    assert enrol.status_code == 403 and problem_code(enrol) == "mfa_required"
    attacker_secret = pyotp.random_base32()
    confirm = client.post("/api/v1/auth/mfa/enroll/confirm", headers=csrf_headers(pending),
                          json={"code": pyotp.TOTP(attacker_secret).now()})
    assert confirm.status_code == 403 and problem_code(confirm) == "mfa_required"
    with tenant_session(member.tenant_id) as db:
        user = db.get(User, member.user_id)
        assert user is not None and user.totp_pending_secret is None
    assert _state(app, pending) == "mfa_pending"


def test_a_session_opened_before_enrolment_must_give_a_code_after_it(app: Flask) -> None:
    """Two sessions await enrolment (say, the owner's and a thief's with the password); once
    TOTP is enrolled in one, the other must present a code like any new login, not re-enrol
    a secret of its own and so take over the second factor."""
    member = make_member(make_tenant(), Role.admin, mfa=False)
    stale = make_session(member, SessionState.mfa_enrollment)
    _enrol(app, member)  # in another session of the same user
    client = make_client(app, stale)
    blocked = client.get(MEMBERS)
    assert blocked.status_code == 403 and problem_code(blocked) == "mfa_required"
    reenrol = client.post("/api/v1/auth/mfa/enroll", headers=csrf_headers(stale))
    assert reenrol.status_code == 403 and problem_code(reenrol) == "mfa_required"
    assert _state(app, stale) == "mfa_pending"
    assert _verify(app, stale, member.totp_code(1)).status_code == 200
    assert _state(app, stale) == "full"


@pytest.mark.parametrize(("state", "mfa", "code"), [
    (SessionState.mfa_pending, True, "mfa_required"),
    (SessionState.mfa_enrollment, False, "mfa_enrollment_required"),
])
def test_a_restricted_session_reaches_only_me_mfa_and_logout(
        app: Flask, state: SessionState, mfa: bool, code: str) -> None:
    member = make_member(make_tenant(), Role.admin, mfa=mfa)
    restricted = make_session(member, state)
    job_id = make_job(member)
    client = make_client(app, restricted)
    for method, path in (("get", MEMBERS), ("get", SESSIONS), ("get", f"/api/v1/jobs/{job_id}"),
                         ("get", "/api/v1/access-keys"),
                         ("delete", f"{SESSIONS}/{restricted.session_id}")):
        response = getattr(client, method)(path, headers=csrf_headers(restricted))
        assert response.status_code == 403, (path, response.get_json())
        assert problem_code(response) == code
    me = client.get(ME)
    assert me.status_code == 200 and me.get_json()["session"] == state.value
    assert client.post(LOGOUT, headers=csrf_headers(restricted)).status_code == 204
    assert make_client(app, restricted).get(ME).status_code == 401


def test_a_promotion_restricts_a_full_session_until_totp_is_enrolled(app: Flask) -> None:
    """A view-only member needs no MFA; promoted to staff, their open session must not
    carry on without it."""
    tenant = make_tenant()
    admin = make_session(make_member(tenant, Role.admin))
    viewer = make_member(tenant, Role.viewonly)
    session = make_session(viewer)
    assert make_client(app, session).get(MEMBERS).status_code == 200
    promote = make_client(app, admin).patch(f"{MEMBERS}/{viewer.membership_id}",
                                            json={"role": "staff"}, headers=csrf_headers(admin))
    assert promote.status_code == 200, promote.get_json()
    blocked = make_client(app, session).get(MEMBERS)
    assert blocked.status_code == 403 and problem_code(blocked) == "mfa_enrollment_required"
    assert _state(app, session) == "mfa_enrollment"


# --------------------------------------------------------------------------- dead members

@pytest.mark.parametrize("action", ["suspend", "remove"])
def test_a_suspended_or_removed_members_credentials_die_at_once(app: Flask,
                                                                action: str) -> None:
    tenant = make_tenant()
    admin = make_session(make_member(tenant, Role.admin))
    target = make_member(tenant, Role.manager)
    session = make_session(target)
    _, key = make_access_key(target, ["jobs:read"])
    job_id = make_job(target)
    assert make_client(app, session).get(ME).status_code == 200
    assert make_client(app).get(f"/api/v1/jobs/{job_id}", headers=_bearer(key)).status_code == 200

    client = make_client(app, admin)
    path = f"{MEMBERS}/{target.membership_id}"
    if action == "suspend":
        response = client.patch(path, json={"status": "suspended"}, headers=csrf_headers(admin))
        assert response.status_code == 200, response.get_json()
    else:
        response = client.delete(path, headers=csrf_headers(admin))
        assert response.status_code == 204

    for path in (ME, MEMBERS, f"/api/v1/jobs/{job_id}"):
        refused = make_client(app, session).get(path)
        assert refused.status_code == 401 and problem_code(refused) == "not_authenticated"
    refused = make_client(app).get(f"/api/v1/jobs/{job_id}", headers=_bearer(key))
    assert refused.status_code == 401 and problem_code(refused) == "not_authenticated"
    login = make_client(app).post(LOGIN, json={"email": target.email, "password": target.password})
    assert login.status_code in {401, 403}
    assert "portcullis_session" not in _set_cookies(login)


# --------------------------------------------------------------------------- access keys

def test_a_key_works_only_within_its_scope_and_never_on_session_routes(app: Flask) -> None:
    admin = make_session(make_member(make_tenant(), Role.admin))
    job_id = make_job(admin)
    _, reader = _api_key(app, admin, ["jobs:read"])
    _, other = _api_key(app, admin, ["buckets:read", "files:read", "audit:read"])
    job = f"/api/v1/jobs/{job_id}"

    ok = make_client(app).get(job, headers=_bearer(reader))
    assert ok.status_code == 200 and ok.get_json()["id"] == str(job_id)
    lacking = make_client(app).get(job, headers=_bearer(other))
    assert lacking.status_code == 403 and problem_code(lacking) == "insufficient_scope"

    for key in (reader, other):
        for method, path in (("get", ME), ("get", MEMBERS), ("get", SESSIONS),
                             ("get", "/api/v1/access-keys"), ("post", "/api/v1/access-keys"),
                             ("post", LOGOUT),
                             ("patch", f"{MEMBERS}/{admin.member.membership_id}")):
            response = getattr(make_client(app), method)(path, headers=_bearer(key), json={})
            assert response.status_code == 403, (path, response.get_json())
            assert problem_code(response) == "session_required"


def test_a_revoked_key_is_401(app: Flask) -> None:
    admin = make_session(make_member(make_tenant(), Role.admin))
    job = f"/api/v1/jobs/{make_job(admin)}"
    key_id, key = _api_key(app, admin, ["jobs:read"])
    assert make_client(app).get(job, headers=_bearer(key)).status_code == 200
    revoked = make_client(app, admin).delete(f"/api/v1/access-keys/{key_id}",
                                             headers=csrf_headers(admin))
    assert revoked.status_code == 204
    response = make_client(app).get(job, headers=_bearer(key))
    assert response.status_code == 401 and problem_code(response) == "not_authenticated"


def test_an_expired_key_is_401(app: Flask) -> None:
    admin = make_session(make_member(make_tenant(), Role.admin))
    job = f"/api/v1/jobs/{make_job(admin)}"
    key_id, key = _api_key(app, admin, ["jobs:read"])
    assert make_client(app).get(job, headers=_bearer(key)).status_code == 200
    with system_session() as db:
        db.execute(update(AccessKey).where(AccessKey.id == uuid.UUID(key_id))
                   .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    response = make_client(app).get(job, headers=_bearer(key))
    assert response.status_code == 401 and problem_code(response) == "not_authenticated"


def test_a_key_acts_with_its_creators_current_role(app: Flask) -> None:
    tenant = make_tenant()
    creator = make_session(make_member(tenant, Role.admin))
    other_admin = make_session(make_member(tenant, Role.admin))
    staff = make_member(tenant, Role.staff)
    _, key = _api_key(app, creator, ["jobs:read"])
    staffs_job = f"/api/v1/jobs/{make_job(staff)}"
    own_job = f"/api/v1/jobs/{make_job(creator)}"
    assert make_client(app).get(staffs_job, headers=_bearer(key)).status_code == 200  # as admin

    demote = make_client(app, other_admin).patch(f"{MEMBERS}/{creator.member.membership_id}",
                                                 json={"role": "staff"},
                                                 headers=csrf_headers(other_admin))
    assert demote.status_code == 200, demote.get_json()
    response = make_client(app).get(staffs_job, headers=_bearer(key))
    assert response.status_code == 404 and problem_code(response) == "not_found"
    assert make_client(app).get(own_job, headers=_bearer(key)).status_code == 200


@pytest.mark.parametrize("authorization", [
    "Bearer pck_" + "A" * 43,
    "Bearer pck_",
    "Bearer pck_x",
    "Bearer " + "A" * 47,
    "Bearer pco_" + "A" * 43,
    "Basic cGNrX2FhYTphYWE=",
    "Bearer",
    "pck_" + "A" * 43,
])
def test_a_made_up_key_is_401(app: Flask, authorization: str) -> None:
    admin = make_session(make_member(make_tenant(), Role.admin))
    job = f"/api/v1/jobs/{make_job(admin)}"
    for path in (job, ME):
        response = make_client(app).get(path, headers={"Authorization": authorization})
        assert response.status_code == 401 and problem_code(response) == "not_authenticated"


def test_a_real_key_with_one_character_changed_is_401(app: Flask) -> None:
    admin = make_session(make_member(make_tenant(), Role.admin))
    job = f"/api/v1/jobs/{make_job(admin)}"
    _, key = _api_key(app, admin, ["jobs:read"])
    tampered = key[:-1] + ("B" if key[-1] != "B" else "C")
    assert make_client(app).get(job, headers=_bearer(tampered)).status_code == 401
    assert make_client(app).get(job, headers=_bearer(key)).status_code == 200


def test_an_operator_key_reads_only_its_own_jobs_and_operator_routes(app: Flask) -> None:
    key_id, key = make_operator_key()
    other_id, _ = make_operator_key()
    own, foreign = make_job(None, operator_key_id=key_id), make_job(None, operator_key_id=other_id)
    admin = make_session(make_member(make_tenant(), Role.admin))
    tenant_job = make_job(admin)

    ok = make_client(app).get(f"/api/v1/jobs/{own}", headers=_bearer(key))
    assert ok.status_code == 200 and ok.get_json()["id"] == str(own)
    for job_id in (foreign, tenant_job, uuid.uuid4()):
        response = make_client(app).get(f"/api/v1/jobs/{job_id}", headers=_bearer(key))
        assert response.status_code == 404 and problem_code(response) == "not_found"

    for method, path in (("get", MEMBERS), ("get", ME), ("get", SESSIONS),
                         ("get", "/api/v1/access-keys"), ("get", "/api/v1/audit-events"),
                         ("post", LOGOUT), ("post", "/api/v1/access-keys"),
                         ("delete", f"{MEMBERS}/{admin.member.membership_id}")):
        response = getattr(make_client(app), method)(path, headers=_bearer(key), json={})
        assert response.status_code == 401, (path, response.get_json())
        assert problem_code(response) == "not_authenticated"
    # Nothing changed for the tenant's admin.
    assert make_client(app, admin).get(ME).status_code == 200

    # The operator route itself takes the operator key, and only it.
    target = make_tenant("Operated Co")
    path = f"/api/v1/operator/tenants/{target}/status"
    worked = make_client(app).post(path, json={"status": "active"}, headers=_bearer(key))
    assert worked.status_code == 200, worked.get_json()
    _, admin_key = _api_key(app, admin, ["jobs:read", "audit:read", "billing:read"])
    by_key = make_client(app).post(path, json={"status": "suspended"}, headers=_bearer(admin_key))
    assert by_key.status_code in {401, 403}
    by_session = make_client(app, admin).post(path, json={"status": "suspended"},
                                              headers=csrf_headers(admin))
    assert by_session.status_code in {401, 403}


def test_a_revoked_operator_key_is_401(app: Flask) -> None:
    key_id, key = make_operator_key()
    job = f"/api/v1/jobs/{make_job(None, operator_key_id=key_id)}"
    assert make_client(app).get(job, headers=_bearer(key)).status_code == 200
    with system_session() as db:
        db.execute(update(OperatorKey).where(OperatorKey.id == key_id)
                   .values(revoked_at=datetime.now(UTC)))
    response = make_client(app).get(job, headers=_bearer(key))
    assert response.status_code == 401 and problem_code(response) == "not_authenticated"


# --------------------------------------------------------------------------- tenants

def test_another_tenants_members_and_keys_are_404(app: Flask) -> None:
    mine = make_session(make_member(make_tenant("Mine"), Role.admin))
    theirs = make_tenant("Theirs")
    their_admin = make_session(make_member(theirs, Role.admin))
    victim = make_member(theirs, Role.staff)
    key_id, key = make_access_key(their_admin.member, ["jobs:read"])
    job = f"/api/v1/jobs/{make_job(their_admin)}"

    client = make_client(app, mine)
    missing = client.delete(f"{MEMBERS}/{uuid.uuid4()}", headers=csrf_headers(mine))
    assert missing.status_code == 404
    attempts = [
        ("patch", f"{MEMBERS}/{victim.membership_id}", {"role": "admin"}),
        ("patch", f"{MEMBERS}/{victim.membership_id}", {"status": "suspended"}),
        ("patch", f"{MEMBERS}/{their_admin.member.membership_id}", {"role": "viewonly"}),
        ("delete", f"{MEMBERS}/{victim.membership_id}", None),
        ("delete", f"{MEMBERS}/{their_admin.member.membership_id}", None),
        ("delete", f"/api/v1/access-keys/{key_id}", None),
    ]
    for method, path, body in attempts:
        response = getattr(client, method)(path, json=body, headers=csrf_headers(mine))
        assert response.status_code == 404, (path, response.get_json())
        assert problem_code(response) == "not_found"
        if method == "delete" and "members" in path:
            assert _without_request_id(response) == _without_request_id(missing)

    with tenant_session(theirs) as db:
        rows = {m.id: (m.role, m.status) for m in db.scalars(
            select(Membership).where(Membership.tenant_id == theirs))}
        revoked = db.scalar(select(AccessKey.revoked_at).where(AccessKey.id == key_id))
    assert rows[victim.membership_id] == (Role.staff.value, "active")
    assert rows[their_admin.member.membership_id] == (Role.admin.value, "active")
    assert revoked is None
    assert make_client(app).get(job, headers=_bearer(key)).status_code == 200
    assert make_client(app, their_admin).get(ME).status_code == 200


# --------------------------------------------------------------------------- login oracles

def test_unknown_email_and_wrong_password_answer_alike(app: Flask) -> None:
    tenant = make_tenant()
    admin = make_session(make_member(tenant, Role.admin))
    member = make_member(tenant, Role.viewonly)
    removed = make_member(tenant, Role.viewonly)
    assert make_client(app, admin).delete(f"{MEMBERS}/{removed.membership_id}",
                                          headers=csrf_headers(admin)).status_code == 204
    wrong = "a wrong but long password"

    unknown = log_in(make_client(app), f"nobody-{uuid.uuid4().hex[:10]}@example.com", wrong)
    assert unknown.status_code == 401 and problem_code(unknown) == "invalid_credentials"
    reference = _without_request_id(unknown)
    for response in (log_in(make_client(app), member.email, wrong),
                     log_in(make_client(app), member.email.upper(), wrong),
                     log_in(make_client(app), removed.email, wrong),
                     log_in(make_client(app), removed.email, removed.password)):
        assert response.status_code == 401
        assert _without_request_id(response) == reference
        assert response.headers["Content-Type"] == unknown.headers["Content-Type"]
        assert "portcullis_session" not in _set_cookies(response)
    assert "portcullis_session" not in _set_cookies(unknown)


def test_email_not_verified_is_said_only_after_the_right_password(app: Flask) -> None:
    member = make_member(make_tenant(), Role.admin, verified=False)
    unknown = log_in(make_client(app), f"nobody-{uuid.uuid4().hex[:10]}@example.com",
                     "nope nope nope")
    wrong = log_in(make_client(app), member.email, "nope nope nope")
    assert wrong.status_code == 401 and problem_code(wrong) == "invalid_credentials"
    assert _without_request_id(wrong) == _without_request_id(unknown)
    right = log_in(make_client(app), member.email, member.password)
    assert right.status_code == 403 and problem_code(right) == "email_not_verified"
    assert "portcullis_session" not in _set_cookies(right)
