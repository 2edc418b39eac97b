"""Passkeys (WebAuthn) as a second factor equal to TOTP, through the API with a software
authenticator (ES256, ``none`` attestation): enrolment from an ``mfa_enrollment`` session
(which becomes full) and from a full one (with proof), sign-in from ``mfa_pending``, and
every way an answer must be refused: wrong origin, wrong rp id, a tampered signature, a
replayed, foreign or expired challenge, a counter that went back, another user's
credential. Removal keeps the last second factor of a role that needs one (409
``last_factor``). Every test has its own tenant; time is moved in the challenge's row,
never waited for."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from werkzeug.test import TestResponse

from devstack.stack import LocalStack
from portcullis.accounts import mfa
from portcullis.accounts.models import (
    PasskeyChallenge,
    PasskeyCredential,
    Role,
    SessionState,
    User,
)
from portcullis.audit.models import AuditEvent
from portcullis.db import system_session, tenant_session
from portcullis.redis_client import get_redis
from tests.support.authenticator import RP_ID, Authenticator, b64url, unb64url
from tests.support.factories import (
    LoggedIn,
    Member,
    make_member,
    make_passkey,
    make_session,
    make_tenant,
    timedelta_ago,
)
from tests.support.mail import wait_for_mail
from tests.support.web import csrf_headers, log_in, make_client, problem_code

pytestmark = pytest.mark.usefixtures("stack")

BASE = "/api/v1/auth/webauthn"
REG_OPTIONS, REGISTER = f"{BASE}/register/options", f"{BASE}/register"
AUTH_OPTIONS, AUTHENTICATE = f"{BASE}/authenticate/options", f"{BASE}/authenticate"
CREDENTIALS = f"{BASE}/credentials"
ME = "/api/v1/auth/me"


@dataclass
class Browser:
    """A client with its session's cookies and CSRF header."""

    client: FlaskClient
    headers: dict[str, str]

    def post(self, path: str, body: dict[str, Any] | None = None) -> TestResponse:
        if body is None:
            return self.client.post(path, headers=self.headers)
        return self.client.post(path, headers=self.headers, json=body)

    def get(self, path: str) -> TestResponse:
        return self.client.get(path)

    def delete(self, path: str) -> TestResponse:
        return self.client.delete(path, headers=self.headers)

    def session(self) -> str:
        return str(self.get(ME).get_json()["session"])


def _browser(app: Flask, who: LoggedIn) -> Browser:
    return Browser(make_client(app, who), {"X-CSRF-Token": who.csrf})


def _log_in(app: Flask, member: Member, status: str = "mfa_required") -> Browser:
    client = make_client(app)
    response = log_in(client, member.email, member.password)
    assert response.get_json() == {"status": status}, response.get_json()
    return Browser(client, csrf_headers(client))


def _options(browser: Browser, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = browser.post(path, body)
    assert response.status_code == 200, response.get_json()
    options: dict[str, Any] = response.get_json()["publicKey"]
    return options


def _enrol(browser: Browser, authenticator: Authenticator, name: str = "YubiKey 5",
           proof: dict[str, Any] | None = None) -> TestResponse:
    options = _options(browser, REG_OPTIONS, proof)
    return browser.post(REGISTER, {"name": name, "credential": authenticator.register(options)})


def _sign_in(browser: Browser, authenticator: Authenticator, **bend: Any) -> TestResponse:
    options = _options(browser, AUTH_OPTIONS)
    return browser.post(AUTHENTICATE, {"credential": authenticator.assertion(options, **bend)})


def _refused(response: TestResponse, status: int = 401) -> None:
    assert response.status_code == status, response.get_json()
    assert problem_code(response) == "webauthn_failed"


def _events(member: Member, action: str) -> list[AuditEvent]:
    with system_session() as db:
        return list(db.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == member.tenant_id, AuditEvent.action == action)
            .order_by(AuditEvent.seq)))


def _reasons(member: Member) -> list[str]:
    return [(e.details or {}).get("reason", "") for e in _events(member, "auth.webauthn_failed")]


def _stored(member: Member) -> list[PasskeyCredential]:
    with tenant_session(member.tenant_id) as db:
        rows = list(db.scalars(select(PasskeyCredential).where(
            PasskeyCredential.user_id == member.user_id)))
        db.expunge_all()
        return rows


def _pending(app: Flask, member: Member) -> Browser:
    return _browser(app, make_session(member, SessionState.mfa_pending))


# --------------------------------------------------------------------------- enrolment


def test_enrolment_from_an_mfa_enrollment_session_completes_it_and_then_signs_in(
        app: Flask) -> None:
    member = make_member(make_tenant("Passkey Enrol Co"), Role.admin, mfa=False)
    browser = _log_in(app, member, "mfa_enrollment_required")
    assert browser.get("/api/v1/members").status_code == 403

    options = _options(browser, REG_OPTIONS)
    assert options["rp"] == {"name": "Portcullis", "id": RP_ID}
    assert unb64url(options["user"]["id"]) == member.user_id.bytes
    assert options["user"]["name"] == member.email
    assert {"type": "public-key", "alg": -7} in options["pubKeyCredParams"]
    assert options["excludeCredentials"] == [] and options["timeout"] == 300_000
    assert options["attestation"] == "none" and len(unb64url(options["challenge"])) >= 32
    authenticator = Authenticator(backup_eligible=True, backed_up=True,
                                  transports=("usb", "nfc"))
    created = browser.post(REGISTER, {"name": "YubiKey 5",
                                      "credential": authenticator.register(options)})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert set(body) == {"id", "name", "created_at"} and body["name"] == "YubiKey 5"

    me = browser.get(ME).get_json()
    assert me["session"] == "full" and me["mfa_enabled"] is True
    assert browser.get("/api/v1/members").status_code == 200
    [row] = _stored(member)
    assert str(row.id) == body["id"] and row.credential_id == authenticator.credential_id
    assert row.public_key == authenticator.cose_public_key() and row.sign_count == 0
    assert row.transports == ["nfc", "usb"] and row.backup_eligible and row.backed_up
    [registered] = _events(member, "auth.webauthn_registered")
    assert registered.target_type == "passkey" and registered.target_id == body["id"]
    assert registered.details == {"name": "YubiKey 5", "backup_eligible": True,
                                  "first_factor": True, "completes_enrolment": True}

    # A second factor is now due at every login, and the passkey gives it.
    again = _log_in(app, member)
    assert again.session() == "mfa_pending"
    assert again.get("/api/v1/members").status_code == 403
    request = _options(again, AUTH_OPTIONS)
    assert request["rpId"] == RP_ID and request["userVerification"] == "preferred"
    assert request["allowCredentials"] == [
        {"id": authenticator.id, "type": "public-key", "transports": ["nfc", "usb"]}]
    signed = again.post(AUTHENTICATE, {"credential": authenticator.assertion(request)})
    assert signed.status_code == 200, signed.get_json()
    assert again.session() == "full"
    assert again.get("/api/v1/members").status_code == 200
    [used] = _events(member, "auth.webauthn_succeeded")
    assert used.severity == "info" and used.details == {"webauthn_id": body["id"]}
    [row] = _stored(member)
    assert row.sign_count == 1 and row.last_used_at is not None
    listed = again.get(CREDENTIALS).get_json()
    assert listed["next_cursor"] is None
    assert [(i["id"], i["name"]) for i in listed["items"]] == [(body["id"], "YubiKey 5")]
    assert listed["items"][0]["last_used_at"] is not None


def test_enrolment_from_a_full_session_needs_proof(app: Flask) -> None:
    member = make_member(make_tenant("Passkey Proof Co"), Role.manager)
    browser = _browser(app, make_session(member))
    bare = browser.post(REG_OPTIONS)
    assert bare.status_code == 403 and problem_code(bare) == "reauthentication_required"
    wrong = browser.post(REG_OPTIONS, {"code": member.wrong_totp_code()})
    assert wrong.status_code == 401 and problem_code(wrong) == "invalid_mfa_code"

    first = Authenticator()
    assert _enrol(browser, first, proof={"code": member.totp_code()}).status_code == 201
    # The proof covers this session for a while (as for TOTP): a second key needs none.
    second = Authenticator()
    options = _options(browser, REG_OPTIONS)
    assert options["excludeCredentials"] == [
        {"id": first.id, "type": "public-key", "transports": ["usb"]}]
    created = browser.post(REGISTER, {"name": "Backup key", "credential": second.register(options)})
    assert created.status_code == 201
    assert browser.session() == "full"
    assert {r.credential_id for r in _stored(member)} == {first.credential_id,
                                                          second.credential_id}
    [event] = [e for e in _events(member, "auth.webauthn_registered")
               if (e.details or {}).get("name") == "Backup key"]
    assert event.details == {"name": "Backup key", "backup_eligible": False,
                             "first_factor": False, "completes_enrolment": False}


def test_a_password_proves_a_full_session_of_a_member_without_a_second_factor(
        app: Flask) -> None:
    member = make_member(make_tenant("Passkey Viewer Co"), Role.viewonly)
    browser = _browser(app, make_session(member))
    assert _enrol(browser, Authenticator(), proof={"password": member.password}).status_code == 201
    assert browser.get(ME).get_json()["mfa_enabled"] is True
    assert _log_in(app, member).session() == "mfa_pending"


def test_a_session_awaiting_its_second_factor_cannot_register(app: Flask) -> None:
    member = make_member(make_tenant("Passkey Pending Co"), Role.staff)
    make_passkey(member)
    pending = _pending(app, member)
    for path in (REG_OPTIONS, REGISTER):
        response = pending.post(path, {})
        assert response.status_code == 403 and problem_code(response) == "mfa_required"
    full = _browser(app, make_session(member))
    response = full.post(AUTH_OPTIONS)
    assert response.status_code == 409 and problem_code(response) == "mfa_not_pending"


def test_an_authenticator_answering_for_another_origin_or_rp_id_is_refused(
        app: Flask) -> None:
    member = make_member(make_tenant("Passkey Origin Co"), Role.admin, mfa=False)
    enrolling = _browser(app, make_session(member, SessionState.mfa_enrollment))
    for bent in (Authenticator(origin="https://portcullis.test.evil.example"),
                 Authenticator(origin="http://portcullis.test:8443"),
                 Authenticator(rp_id="evil.example")):
        _refused(_enrol(enrolling, bent), 400)
    assert _stored(member) == [] and enrolling.session() == "mfa_enrollment"
    assert _reasons(member) == ["not_verified"] * 3

    owner = make_member(member.tenant_id, Role.admin, mfa=False)
    genuine = make_passkey(owner).authenticator
    pending = _pending(app, owner)
    genuine.origin = "https://evil.example"
    _refused(_sign_in(pending, genuine))
    genuine.origin, genuine.rp_id = "http://portcullis.test", "evil.example"
    _refused(_sign_in(pending, genuine))
    assert pending.session() == "mfa_pending"
    genuine.rp_id = RP_ID
    assert _sign_in(pending, genuine).status_code == 200


def test_a_tampered_signature_is_refused(app: Flask) -> None:
    member = make_member(make_tenant("Passkey Tamper Co"), Role.staff)
    authenticator = make_passkey(member).authenticator
    pending = _pending(app, member)
    _refused(_sign_in(pending, authenticator, tamper=True))
    assert pending.session() == "mfa_pending"
    [failed] = _events(member, "auth.webauthn_failed")
    assert failed.severity == "warning"
    assert (failed.details or {}).items() >= {"step": "authentication", "reason": "not_verified",
                                              "failures": 1, "session_ended": False}.items()


def test_a_challenge_is_single_use_and_bound_to_its_session(app: Flask) -> None:
    member = make_member(make_tenant("Passkey Replay Co"), Role.admin)
    authenticator = make_passkey(member).authenticator
    first = _pending(app, member)
    options = _options(first, AUTH_OPTIONS)
    assertion = authenticator.assertion(options)
    # Another pending session of the same user cannot answer this session's challenge...
    other = _pending(app, member)
    _refused(other.post(AUTHENTICATE, {"credential": assertion}))
    _options(other, AUTH_OPTIONS)  # ... not even with a challenge of its own
    _refused(other.post(AUTHENTICATE, {"credential": assertion}))
    assert first.post(AUTHENTICATE, {"credential": assertion}).status_code == 200
    # The same answer again, from a new session: its challenge is gone.
    again = _pending(app, member)
    _refused(again.post(AUTHENTICATE, {"credential": assertion}))
    assert _reasons(member) == ["no_challenge", "not_verified", "no_challenge"]

    # A refused answer uses the challenge up too: a good one for it comes too late.
    late = _pending(app, member)
    options = _options(late, AUTH_OPTIONS)
    _refused(late.post(AUTHENTICATE, {"credential": authenticator.assertion(options,
                                                                             tamper=True)}))
    _refused(late.post(AUTHENTICATE, {"credential": authenticator.assertion(options)}))
    # Asking again replaces the challenge: only the newest one is answerable.
    newest = _pending(app, member)
    stale = _options(newest, AUTH_OPTIONS)
    fresh = _options(newest, AUTH_OPTIONS)
    assert stale["challenge"] != fresh["challenge"]
    _refused(newest.post(AUTHENTICATE, {"credential": authenticator.assertion(stale)}))


def test_a_registration_answer_cannot_be_replayed(app: Flask) -> None:
    member = make_member(make_tenant("Passkey Register Replay Co"), Role.admin, mfa=False)
    enrolling = _browser(app, make_session(member, SessionState.mfa_enrollment))
    authenticator = Authenticator()
    body = {"name": "Key", "credential": authenticator.register(
        _options(enrolling, REG_OPTIONS))}
    assert enrolling.post(REGISTER, body).status_code == 201
    _refused(enrolling.post(REGISTER, body), 400)
    # The same credential again, over a fresh challenge, is not stored twice (the session
    # is full now: asking for options takes the password).
    again = {"name": "Key", "credential": authenticator.register(
        _options(enrolling, REG_OPTIONS, {"password": member.password}))}
    _refused(enrolling.post(REGISTER, again), 400)
    assert len(_stored(member)) == 1
    assert _reasons(member) == ["no_challenge", "already_registered"]


def test_an_expired_challenge_is_refused(app: Flask) -> None:
    member = make_member(make_tenant("Passkey Expiry Co"), Role.admin)
    authenticator = make_passkey(member).authenticator
    who = make_session(member, SessionState.mfa_pending)
    pending = _browser(app, who)
    options = _options(pending, AUTH_OPTIONS)
    with tenant_session(member.tenant_id) as db:
        row = db.scalars(select(PasskeyChallenge).where(
            PasskeyChallenge.session_id == who.session_id)).one()
        assert timedelta_ago(-290) < row.expires_at <= timedelta_ago(-300)
        db.execute(update(PasskeyChallenge).where(PasskeyChallenge.id == row.id)
                   .values(expires_at=timedelta_ago(1)))
    _refused(pending.post(AUTHENTICATE, {"credential": authenticator.assertion(options)}))
    assert _reasons(member) == ["challenge_expired"]
    assert pending.session() == "mfa_pending"

    enrolling_member = make_member(member.tenant_id, Role.staff, mfa=False)
    enrolling = make_session(enrolling_member, SessionState.mfa_enrollment)
    browser = _browser(app, enrolling)
    options = _options(browser, REG_OPTIONS)
    with tenant_session(member.tenant_id) as db:
        db.execute(update(PasskeyChallenge).where(
            PasskeyChallenge.session_id == enrolling.session_id)
            .values(expires_at=timedelta_ago(1)))
    _refused(browser.post(REGISTER, {"name": "Late", "credential": Authenticator().register(
        options)}), 400)
    assert _stored(enrolling_member) == []


def test_a_counter_that_does_not_increase_is_refused_and_audited_as_critical(
        app: Flask) -> None:
    member = make_member(make_tenant("Passkey Clone Co"), Role.admin)
    passkey = make_passkey(member, Authenticator(counter=10))
    authenticator = passkey.authenticator
    for sent in (10, 5):  # the same count again, then a lower one
        pending = _pending(app, member)
        _refused(_sign_in(pending, authenticator, counter=sent))
        assert pending.session() == "mfa_pending"
    regressed = _events(member, "auth.webauthn_counter_regressed")
    assert [e.severity for e in regressed] == ["critical", "critical"]
    assert [(e.target_type, e.target_id) for e in regressed] == [("passkey", str(passkey.id))] * 2
    assert [e.details for e in regressed] == [{"stored_count": 10, "presented_count": 10},
                                              {"stored_count": 10, "presented_count": 5}]
    assert _reasons(member) == ["counter_regressed", "counter_regressed"]
    assert [r.sign_count for r in _stored(member)] == [10]
    assert _sign_in(_pending(app, member), authenticator, counter=11).status_code == 200
    assert [r.sign_count for r in _stored(member)] == [11]


def test_an_authenticator_that_does_not_count_is_accepted(app: Flask) -> None:
    member = make_member(make_tenant("Passkey No Counter Co"), Role.admin)
    authenticator = make_passkey(member, Authenticator(counts=False)).authenticator
    for _ in range(2):
        assert _sign_in(_pending(app, member), authenticator).status_code == 200
    assert _events(member, "auth.webauthn_counter_regressed") == []


def test_another_users_credential_is_refused_and_not_found(app: Flask) -> None:
    tenant = make_tenant("Passkey Others Co")
    member, colleague = make_member(tenant, Role.admin), make_member(tenant, Role.staff)
    make_passkey(member)
    theirs = make_passkey(colleague)
    stranger = make_passkey(make_member(make_tenant("Passkey Stranger Co"), Role.admin))
    pending = _pending(app, member)
    _refused(_sign_in(pending, theirs.authenticator))
    _refused(_sign_in(pending, stranger.authenticator))
    assert _reasons(member) == ["unknown_credential", "unknown_credential"]
    assert pending.session() == "mfa_pending"

    # Their own user handle on one's own key is refused too.
    mine = Authenticator()
    make_passkey(member, mine)
    mine.user_handle = colleague.user_id.bytes
    _refused(_sign_in(pending, mine))
    assert _reasons(member)[-1] == "user_handle_mismatch"

    full = _browser(app, make_session(member))
    listed = full.get(CREDENTIALS).get_json()["items"]
    assert str(theirs.id) not in {i["id"] for i in listed} and len(listed) == 2
    for foreign in (theirs.id, stranger.id):
        response = full.delete(f"{CREDENTIALS}/{foreign}")
        assert response.status_code == 404 and problem_code(response) == "not_found"
    assert len(_stored(colleague)) == 1


def test_five_refused_assertions_end_the_session(app: Flask) -> None:
    member = make_member(make_tenant("Passkey Strikes Co"), Role.staff)
    authenticator = make_passkey(member).authenticator
    pending = _pending(app, member)
    for _ in range(5):
        _refused(_sign_in(pending, authenticator, tamper=True))
    assert pending.get(ME).status_code == 401
    last = _events(member, "auth.webauthn_failed")[-1]
    assert (last.details or {}).items() >= {"failures": 5, "session_ended": True}.items()


def test_a_locked_second_factor_step_refuses_passkeys_too(app: Flask) -> None:
    member = make_member(make_tenant("Passkey Locked Co"), Role.staff)
    authenticator = make_passkey(member).authenticator
    pending = _pending(app, member)
    options = _options(pending, AUTH_OPTIONS)
    lock = mfa._lock_key(member.user_id)
    get_redis().set(lock, 1, ex=60)
    try:
        response = pending.post(AUTHENTICATE, {"credential": authenticator.assertion(options)})
        assert response.status_code == 429 and problem_code(response) == "rate_limited"
        assert int(response.headers["Retry-After"]) > 0
    finally:
        get_redis().delete(lock)
    assert pending.post(AUTHENTICATE, {"credential": authenticator.assertion(options)}
                        ).status_code == 200


# --------------------------------------------------------------------------- removal


def test_the_last_second_factor_of_a_role_that_needs_one_stays(app: Flask) -> None:
    tenant = make_tenant("Passkey Removal Co")
    member = make_member(tenant, Role.admin, mfa=False)
    first, second = make_passkey(member, name="first"), make_passkey(member, name="second")
    browser = _browser(app, make_session(member))
    assert browser.delete(f"{CREDENTIALS}/{first.id}").status_code == 204
    last = browser.delete(f"{CREDENTIALS}/{second.id}")
    assert last.status_code == 409 and problem_code(last) == "last_factor"
    assert [i["name"] for i in browser.get(CREDENTIALS).get_json()["items"]] == ["second"]
    [removed] = _events(member, "auth.webauthn_removed")
    assert (removed.target_type, removed.target_id) == ("passkey", str(first.id))
    assert removed.details == {"name": "first", "remaining": 1}

    # With TOTP enrolled too, the last passkey may go.
    with_totp = make_member(tenant, Role.staff)
    passkey = make_passkey(with_totp)
    browser = _browser(app, make_session(with_totp))
    assert browser.delete(f"{CREDENTIALS}/{passkey.id}").status_code == 204
    assert browser.get(ME).get_json()["mfa_enabled"] is True

    # A role that needs no second factor may remove its last one; login then asks none.
    viewer = make_member(tenant, Role.viewonly)
    passkey = make_passkey(viewer)
    browser = _browser(app, make_session(viewer))
    assert browser.get(ME).get_json()["mfa_enabled"] is True
    assert browser.delete(f"{CREDENTIALS}/{passkey.id}").status_code == 204
    assert browser.get(ME).get_json()["mfa_enabled"] is False
    with tenant_session(tenant) as db:
        user = db.get(User, viewer.user_id)
        assert user is not None and user.passkey_enabled_at is None
    _log_in(app, viewer, "ok")


@pytest.mark.usefixtures("worker")  # the email's send job
def test_the_user_is_told_of_each_passkey_added_and_removed(app: Flask,
                                                            stack: LocalStack) -> None:
    """Email, after commit: a stolen session cannot change the second factors unseen."""
    member = make_member(make_tenant("Passkey Notice Co"), Role.staff, mfa=False)
    browser = _log_in(app, member, "mfa_enrollment_required")
    assert _enrol(browser, Authenticator(), name="laptop").status_code == 201
    added = wait_for_mail(stack, member.email, "A passkey was added")
    assert "If this was not you" in str(added.get_body(("plain",)).get_content())
    spare = make_passkey(member, name="spare")
    assert browser.delete(f"{CREDENTIALS}/{spare.id}").status_code == 204
    wait_for_mail(stack, member.email, "A passkey was removed")


def test_listing_pages_through_own_passkeys_only(app: Flask) -> None:
    tenant = make_tenant("Passkey Listing Co")
    member = make_member(tenant, Role.admin)
    ids = {str(make_passkey(member, name=f"key {n}").id) for n in range(3)}
    make_passkey(make_member(tenant, Role.admin))
    browser = _browser(app, make_session(member))
    page = browser.get(f"{CREDENTIALS}?limit=2").get_json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = browser.get(f"{CREDENTIALS}?limit=2&cursor={page['next_cursor']}").get_json()
    assert rest["next_cursor"] is None
    assert {i["id"] for i in page["items"] + rest["items"]} == ids
    for item in page["items"] + rest["items"]:
        assert set(item) == {"id", "name", "created_at", "last_used_at"}


# --------------------------------------------------------------------------- secrets


def test_no_public_key_or_challenge_reaches_a_log_or_an_audit_row(
        app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    member = make_member(make_tenant("Passkey Secrets Co"), Role.admin, mfa=False)
    authenticator = Authenticator()
    seen: list[str] = [b64url(authenticator.cose_public_key()),
                       authenticator.cose_public_key().hex()]
    with caplog.at_level(logging.DEBUG):
        enrolling = _browser(app, make_session(member, SessionState.mfa_enrollment))
        options = _options(enrolling, REG_OPTIONS)
        seen.append(options["challenge"])
        assert enrolling.post(REGISTER, {"name": "Key", "credential": authenticator.register(
            options)}).status_code == 201
        for tamper in (True, False):
            pending = _pending(app, member)
            options = _options(pending, AUTH_OPTIONS)
            seen.append(options["challenge"])
            pending.post(AUTHENTICATE, {"credential": authenticator.assertion(
                options, tamper=tamper)})
    assert not [s for s in seen if s in caplog.text]
    with system_session() as db:
        rows = db.scalars(select(AuditEvent).where(AuditEvent.tenant_id == member.tenant_id))
        text = "\n".join(json.dumps(e.details or {}) for e in rows)
    assert _events(member, "auth.webauthn_failed")
    assert not [s for s in seen if s in text]


# --------------------------------------------------------------------------- document


def test_the_document_describes_every_webauthn_route(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    expected = {
        (REG_OPTIONS, "post"): "200", (REGISTER, "post"): "201",
        (CREDENTIALS, "get"): "200", (f"{CREDENTIALS}/{{credential_id}}", "delete"): "204",
        (AUTH_OPTIONS, "post"): "200", (AUTHENTICATE, "post"): "200",
    }
    for (path, method), status in expected.items():
        responses = paths[path][method]["responses"]
        assert status in responses, (path, method)
    assert "409" in paths[f"{CREDENTIALS}/{{credential_id}}"]["delete"]["responses"]
    assert "401" in paths[AUTHENTICATE]["post"]["responses"]
    assert "400" in paths[REGISTER]["post"]["responses"]
