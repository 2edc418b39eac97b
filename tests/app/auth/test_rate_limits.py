"""Rate limits, kept in the shared Redis: failed logins per account and per IP (successes
free), MFA verification per session, the default limit per identity, and login failing
closed when the limit store is down.

Every test uses its own accounts and client addresses, so tests do not share counters.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from limits import parse as parse_limit
from werkzeug.test import TestResponse

from config import get_settings
from devstack.stack import LocalStack
from portcullis.accounts.models import Role, SessionState
from tests.support.factories import (
    Member,
    make_access_key,
    make_member,
    make_session,
    make_tenant,
)
from tests.support.web import app_with, fresh_ip, log_in, make_client, problem_code

pytestmark = pytest.mark.usefixtures("stack")

ME = "/api/v1/auth/me"
MEMBERS = "/api/v1/members"
SESSIONS = "/api/v1/auth/sessions"
MFA_VERIFY = "/api/v1/auth/mfa/verify"
WRONG = "definitely not the password"


def _unknown_email() -> str:
    return f"nobody-{uuid.uuid4().hex[:12]}@example.com"


def _assert_rate_limited(response: TestResponse) -> None:
    assert response.status_code == 429, response.get_json()
    assert problem_code(response) == "rate_limited"
    assert response.headers["Content-Type"].startswith("application/problem+json")
    retry_after = int(response.headers["Retry-After"])
    assert 0 <= retry_after <= 60
    assert int(response.headers["RateLimit-Limit"]) > 0
    assert response.headers["RateLimit-Remaining"] == "0"
    assert "RateLimit-Reset" in response.headers
    assert "portcullis_session" not in response.headers.get("Set-Cookie", "")


def _viewonly() -> Member:
    return make_member(make_tenant(), Role.viewonly)


# --------------------------------------------------------------------------- login

def test_the_eleventh_failed_login_for_one_account_is_429(app: Flask) -> None:
    member = _viewonly()
    for attempt in range(10):  # each from its own address: only the account limit applies
        response = log_in(make_client(app), member.email, WRONG)
        assert response.status_code == 401, (attempt, response.get_json())
        assert problem_code(response) == "invalid_credentials"
    # Even the right password, from yet another address, and spelled differently.
    for email in (member.email, member.email.upper(), f"  {member.email} "):
        blocked = log_in(make_client(app), email, member.password)
        _assert_rate_limited(blocked)
        assert blocked.headers["RateLimit-Limit"] == "10"
    # Another account is not affected.
    other = _viewonly()
    assert log_in(make_client(app), other.email, other.password).status_code == 200


def test_the_account_budget_is_keyed_by_an_hmac_not_a_plain_digest(app: Flask) -> None:
    """A plain SHA-256 of the address could be reversed by hashing a list of addresses."""
    import hashlib

    from portcullis.redaction import keyed_digest
    from portcullis.redis_client import get_redis

    member = _viewonly()
    assert log_in(make_client(app), member.email, WRONG).status_code == 401
    keys = [k.decode(errors="replace") for k in get_redis().scan_iter(count=1000)]
    plain = hashlib.sha256(member.email.lower().encode()).hexdigest()[:32]
    assert any(f"login-account:{keyed_digest(member.email.lower())}" in k for k in keys)
    assert not any(plain in k or member.email in k for k in keys)


def test_failures_from_one_address_across_accounts_are_429_at_the_eleventh(app: Flask) -> None:
    ip = fresh_ip()
    for attempt in range(10):
        response = log_in(make_client(app, ip=ip), _unknown_email(), WRONG)
        assert response.status_code == 401, (attempt, response.get_json())
    member = _viewonly()
    blocked = log_in(make_client(app, ip=ip), member.email, member.password)
    _assert_rate_limited(blocked)
    assert blocked.headers["RateLimit-Limit"] == "10"
    # The same account from another address is fine: the limit was the address's.
    assert log_in(make_client(app), member.email, member.password).status_code == 200


def test_successful_logins_do_not_count(app: Flask) -> None:
    ip = fresh_ip()
    member = _viewonly()
    for attempt in range(15):
        response = log_in(make_client(app, ip=ip), member.email, member.password)
        assert response.status_code == 200, (attempt, response.get_json())
    # Failures still have their whole allowance.
    for attempt in range(10):
        response = log_in(make_client(app, ip=ip), member.email, WRONG)
        assert response.status_code == 401, (attempt, response.get_json())
    _assert_rate_limited(log_in(make_client(app, ip=ip), member.email, member.password))


# --------------------------------------------------------------------------- MFA

def test_mfa_verify_is_limited_to_five_a_minute_per_session(app: Flask) -> None:
    member = make_member(make_tenant(), Role.admin)
    pending = make_session(member, SessionState.mfa_pending)
    client = make_client(app, pending)
    headers = {"X-CSRF-Token": pending.csrf}
    for attempt in range(5):  # malformed bodies: no wrong code is counted against the session
        response = client.post(MFA_VERIFY, json={"code": ""}, headers=headers)
        assert response.status_code == 400, (attempt, response.get_json())
    blocked = client.post(MFA_VERIFY, json={"code": member.totp_code()}, headers=headers)
    _assert_rate_limited(blocked)
    assert blocked.headers["RateLimit-Limit"] == "5"
    assert client.get(ME).get_json()["session"] == "mfa_pending"
    # The limit is the session's: another session of the same user is not blocked.
    other = make_session(member, SessionState.mfa_pending)
    response = make_client(app, other).post(MFA_VERIFY, json={"code": member.totp_code()},
                                            headers={"X-CSRF-Token": other.csrf})
    assert response.status_code == 200, response.get_json()


# --------------------------------------------------------------------------- default limit

def test_normal_responses_carry_rate_limit_headers(app: Flask) -> None:
    limit = parse_limit(get_settings().RATE_LIMIT_DEFAULT)
    who = make_session(make_member(make_tenant(), Role.admin))
    client = make_client(app, who)
    first, second = client.get(MEMBERS), client.get(MEMBERS)
    for response in (first, second):
        assert response.status_code == 200
        assert response.headers["RateLimit-Limit"] == str(limit.amount)
        assert "RateLimit-Reset" in response.headers
    assert int(first.headers["RateLimit-Remaining"]) == limit.amount - 1
    assert int(second.headers["RateLimit-Remaining"]) == limit.amount - 2


@pytest.fixture
def low_default_limit() -> Iterator[Flask]:
    """RATE_LIMIT_DEFAULT=5/minute and an app built with it; the settings are restored."""
    with app_with(RATE_LIMIT_DEFAULT="5/minute") as app:
        yield app


def test_the_default_limit_is_per_identity(low_default_limit: Flask) -> None:
    app = low_default_limit
    tenant = make_tenant()
    me = make_session(make_member(tenant, Role.admin))
    colleague = make_session(make_member(tenant, Role.admin))
    ip = fresh_ip()
    client = make_client(app, me, ip=ip)
    for attempt in range(5):
        response = client.get(MEMBERS)
        assert response.status_code == 200, (attempt, response.get_json())
        assert response.headers["RateLimit-Limit"] == "5"
        assert response.headers["RateLimit-Remaining"] == str(4 - attempt)
    _assert_rate_limited(client.get(MEMBERS))
    # The identity is limited wherever it comes from ...
    _assert_rate_limited(make_client(app, me).get(MEMBERS))
    # ... while another identity at the same address is not.
    assert make_client(app, colleague, ip=ip).get(MEMBERS).status_code == 200


def test_the_default_limit_counts_every_route_of_an_identity(low_default_limit: Flask) -> None:
    """100 requests/min per identity (API.md): spreading them over routes does not help."""
    app = low_default_limit
    me = make_session(make_member(make_tenant(), Role.admin))
    client = make_client(app, me)
    for path in (MEMBERS, MEMBERS, ME, ME, SESSIONS):
        assert client.get(path).status_code == 200
    _assert_rate_limited(client.get("/api/v1/access-keys"))


def test_the_default_limit_is_per_address_when_anonymous(low_default_limit: Flask) -> None:
    app = low_default_limit
    ip = fresh_ip()
    for attempt in range(5):
        response = make_client(app, ip=ip).get(MEMBERS)
        assert response.status_code == 401, (attempt, response.get_json())
    _assert_rate_limited(make_client(app, ip=ip).get(MEMBERS))
    assert make_client(app).get(MEMBERS).status_code == 401  # another address


# --------------------------------------------------------------------------- store down

def test_login_fails_closed_while_redis_is_down(app: Flask, stack: LocalStack) -> None:
    member = _viewonly()
    stack["redis"].stop()
    try:
        right = log_in(make_client(app), member.email, member.password)
        wrong = log_in(make_client(app), member.email, WRONG)
    finally:
        stack["redis"].start()
    for response in (right, wrong):
        assert response.status_code == 503, response.get_json()
        assert problem_code(response) == "dependency_unavailable"
        assert "portcullis_session" not in response.headers.get("Set-Cookie", "")
    deadline = time.monotonic() + 15
    while True:  # back to normal once Redis is
        response = log_in(make_client(app), member.email, member.password)
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert response.status_code == 200, response.get_json()


# --------------------------------------------------------------------------- public routes

PUBLIC_ROUTES = [
    ("post", "/api/v1/auth/password/forgot", {"email": "nobody@example.com"}),
    ("post", "/api/v1/auth/verify-email/resend", {"email": "nobody@example.com"}),
    ("post", "/api/v1/auth/signup", {"company_name": "X", "name": "X",
                                     "email": "nobody@example.com", "password": "short"}),
    ("post", "/api/v1/auth/verify-email", {"token": "not-a-token"}),
    ("post", "/api/v1/auth/password/reset", {"token": "not-a-token",
                                             "password": "a sturdy passphrase 2026"}),
    ("post", "/api/v1/invitations/accept", {"token": "not-a-token", "name": "X",
                                            "password": "a sturdy passphrase 2026"}),
    ("get", "/s/not-a-real-share-token", None),
]


def test_a_bearer_key_does_not_buy_a_fresh_budget_on_public_routes(
        low_default_limit: Flask) -> None:
    """Public routes count per address whatever the headers: an admin can mint keys, so a
    per-key budget would be an unlimited one."""
    app = low_default_limit
    admin = make_member(make_tenant(), Role.admin)
    keys = [make_access_key(admin, ["jobs:read"]).secret for _ in range(2)]
    ip = fresh_ip()
    for attempt in range(5):
        response = make_client(app, ip=ip).post("/api/v1/auth/password/forgot",
                                                json={"email": _unknown_email()})
        assert response.status_code == 202, (attempt, response.get_json())
    for method, path, body in PUBLIC_ROUTES:
        for key in keys:
            response = getattr(make_client(app, ip=ip), method)(
                path, json=body, headers={"Authorization": f"Bearer {key}"})
            _assert_rate_limited(response)
            assert response.headers["RateLimit-Limit"] == "5", path
    # The key keeps its own budget where it is a credential.
    job = make_client(app, ip=ip).get(f"/api/v1/jobs/{uuid.uuid4()}",
                                      headers={"Authorization": f"Bearer {keys[0]}"})
    assert job.status_code == 404, job.get_json()


# --------------------------------------------------------------------------- email recipients

def _email_jobs(tenant_id: uuid.UUID, kind: str, expected: int) -> list[dict[str, object]]:
    """The results of the tenant's email jobs of ``kind``, once ``expected`` have finished."""
    from sqlalchemy import select

    from portcullis.db import tenant_session
    from portcullis.jobs.models import Job

    deadline = time.monotonic() + 60
    while True:
        with tenant_session(tenant_id) as db:
            jobs = list(db.scalars(select(Job).where(Job.kind == kind)))
            done = [j.result or {} for j in jobs if j.status in {"succeeded", "failed"}]
        if len(done) >= expected or time.monotonic() > deadline:
            return done
        time.sleep(0.2)


def _redis_mentions(text: str) -> bool:
    from portcullis.redis_client import get_redis

    return any(text.lower() in key.decode(errors="replace").lower()
               for key in get_redis().scan_iter(count=1000))


def _without_request_id(response: TestResponse) -> bytes:
    body = response.get_json()
    data = response.get_data()
    return data.replace(body["request_id"].encode(), b"-") if "request_id" in body else data


@pytest.mark.usefixtures("worker")
def test_reset_emails_stop_after_five_an_hour_per_address_with_the_same_answer(
        app: Flask, stack: LocalStack) -> None:
    from tests.support.mail import mail_count

    member = _viewonly()
    answers = []
    for _ in range(7):  # each from its own address: only the recipient limit applies
        response = make_client(app).post("/api/v1/auth/password/forgot",
                                         json={"email": member.email})
        assert response.status_code == 202, response.get_json()
        answers.append(_without_request_id(response))
    assert len(set(answers)) == 1  # the answer does not say the mail was held back
    results = _email_jobs(member.tenant_id, "email.reset_password", 7)
    assert sorted(r.get("sent") for r in results) == [False] * 2 + [True] * 5
    assert {r.get("reason") for r in results if not r.get("sent")} == {"recipient_rate_limited"}
    assert mail_count(stack, member.email) == 5
    assert not _redis_mentions(member.email)  # keyed by a digest


@pytest.mark.usefixtures("worker")
def test_verification_emails_from_signup_and_resend_share_the_recipient_limit(
        app: Flask, stack: LocalStack) -> None:
    from sqlalchemy import select

    from portcullis.accounts.models import User
    from portcullis.db import system_session
    from tests.support.mail import mail_count

    email = f"signup-{uuid.uuid4().hex[:10]}@example.com"
    signed_up = make_client(app).post("/api/v1/auth/signup", json={
        "company_name": "Spam Co", "name": "Owner", "email": email,
        "password": "a sturdy passphrase 2026"})
    assert signed_up.status_code == 202, signed_up.get_json()
    for _ in range(6):
        response = make_client(app).post("/api/v1/auth/verify-email/resend", json={"email": email})
        assert response.status_code == 202 and response.get_json() == {}
    with system_session() as db:
        tenant_id = db.scalars(select(User.tenant_id).where(User.email == email)).one()
    results = _email_jobs(tenant_id, "email.verify_email", 7)
    assert sum(bool(r.get("sent")) for r in results) == 5 and len(results) == 7
    assert mail_count(stack, email) == 5


@pytest.mark.usefixtures("worker")
def test_invitation_emails_to_one_address_are_capped_across_tenants(
        app: Flask, stack: LocalStack) -> None:
    """Any admin can invite any address: invitations are token emails like the others."""
    from tests.support.mail import mail_count

    invitee = f"invitee-{uuid.uuid4().hex[:10]}@example.com"
    admins = [make_session(make_member(make_tenant(), Role.admin)) for _ in range(2)]
    for index in range(7):
        admin = admins[index % 2]
        response = make_client(app, admin).post(
            "/api/v1/invitations", headers={"X-CSRF-Token": admin.csrf},
            json={"email": invitee, "role": "viewonly"})
        assert response.status_code == 201, response.get_json()
    results = [r for admin in admins for r in _email_jobs(
        admin.member.tenant_id, "email.invitation", 3 if admin is admins[1] else 4)]
    assert len(results) == 7 and sum(bool(r.get("sent")) for r in results) == 5
    assert mail_count(stack, invitee) == 5
