"""The second-factor lockout per user: wrong codes count across sessions, so logging in again
with the password buys no more guesses. Past the threshold even a correct code is refused
(429 with Retry-After) until the lock expires; the lock is audited and mailed to the user.

Every test uses its own users and client addresses. Expiry is simulated by deleting the
lock's Redis key, never by waiting."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from config import get_settings
from devstack.stack import LocalStack
from portcullis.accounts import mfa
from portcullis.accounts.models import RecoveryCode, Role, SessionState
from portcullis.audit.models import AuditEvent
from portcullis.db import system_session, tenant_session
from portcullis.redis_client import get_redis
from tests.support.factories import (
    Member,
    make_member,
    make_recovery_code,
    make_session,
    make_tenant,
)
from tests.support.mail import wait_for_mail
from tests.support.web import csrf_headers, log_in, make_client, problem_code, settings_env

pytestmark = pytest.mark.usefixtures("stack")

ME = "/api/v1/auth/me"
MFA_VERIFY = "/api/v1/auth/mfa/verify"


def _log_in(app: Flask, member: Member) -> tuple[FlaskClient, dict[str, str]]:
    """A fresh login with the password, as someone who has it would do: a new session."""
    client = make_client(app)
    response = log_in(client, member.email, member.password)
    assert response.get_json() == {"status": "mfa_required"}, response.get_json()
    assert client.get_cookie("portcullis_csrf") is not None
    return client, csrf_headers(client)


def _verify(client: FlaskClient, headers: dict[str, str], code: str) -> TestResponse:
    return client.post(MFA_VERIFY, json={"code": code}, headers=headers)


def _burn_a_session(app: Flask, member: Member, wrong: int = 5) -> None:
    client, headers = _log_in(app, member)
    for attempt in range(wrong):
        response = _verify(client, headers, member.wrong_totp_code())
        assert response.status_code == 401, (attempt, response.get_json())
        assert problem_code(response) == "invalid_mfa_code"


def _assert_locked(response: TestResponse) -> None:
    assert response.status_code == 429, response.get_json()
    assert problem_code(response) == "rate_limited"
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert 0 < int(response.headers["Retry-After"]) <= get_settings().MFA_LOCKOUT_SECONDS


def _expire_lock(member: Member) -> None:
    """As if MFA_LOCKOUT_SECONDS had passed."""
    assert get_redis().delete(f"{mfa.LOCK_PREFIX}:locked:{member.user_id}") == 1


def _lock_events(member: Member) -> list[AuditEvent]:
    with system_session() as db:
        return list(db.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == member.tenant_id, AuditEvent.action == "auth.mfa_locked")))


@pytest.mark.usefixtures("worker")
def test_wrong_codes_across_fresh_logins_lock_the_second_factor(app: Flask,
                                                                stack: LocalStack) -> None:
    member = make_member(make_tenant(), Role.admin)
    _burn_a_session(app, member)  # five wrong codes end the session ...
    _burn_a_session(app, member)  # ... so log in again for five more: the 10th locks
    assert len(_lock_events(member)) == 1

    client, headers = _log_in(app, member)  # a third login: the password still works
    _assert_locked(_verify(client, headers, member.totp_code()))  # even the right code
    _assert_locked(_verify(client, headers, member.wrong_totp_code()))
    assert client.get(ME).get_json()["session"] == "mfa_pending"

    [event] = _lock_events(member)
    assert event.severity == "critical" and event.target_id == str(member.user_id)
    assert event.details == {"failures": 10, "window_seconds": 900, "locked_seconds": 900}
    mail = wait_for_mail(stack, member.email, "Someone may know your Portcullis password")
    assert "reset it now" in str(mail.get_body(preferencelist=("plain",)).get_content())

    _expire_lock(member)
    ok = _verify(client, headers, member.totp_code())
    assert ok.status_code == 200, ok.get_json()
    assert client.get(ME).get_json()["session"] == "full"
    assert len(_lock_events(member)) == 1  # the refused attempts were not counted


def test_a_recovery_code_is_refused_while_locked_and_other_users_are_not(app: Flask) -> None:
    tenant = make_tenant()
    member, colleague = make_member(tenant, Role.admin), make_member(tenant, Role.admin)
    _burn_a_session(app, member)
    _burn_a_session(app, member)
    pending = make_session(member, SessionState.mfa_pending)
    client = make_client(app, pending)
    # No recovery codes exist for factory members: any 12-character code is refused as
    # locked, not as wrong, so nothing tells whether it would have worked.
    _assert_locked(_verify(client, {"X-CSRF-Token": pending.csrf}, "abcd-efgh-jkmn"))

    theirs = make_session(colleague, SessionState.mfa_pending)
    response = _verify(make_client(app, theirs), {"X-CSRF-Token": theirs.csrf},
                       colleague.totp_code())
    assert response.status_code == 200, response.get_json()


def test_a_correct_code_under_the_threshold_still_works(app: Flask) -> None:
    member = make_member(make_tenant(), Role.admin)
    _burn_a_session(app, member)
    _burn_a_session(app, member, wrong=4)  # nine in all
    client, headers = _log_in(app, member)
    assert _verify(client, headers, member.totp_code()).status_code == 200
    assert _lock_events(member) == []


@pytest.fixture
def lockout_of_three() -> Iterator[None]:
    """MFA_LOCKOUT_FAILURES=3 and a 60 s lock for this test; the settings are restored."""
    with settings_env(MFA_LOCKOUT_FAILURES="3", MFA_LOCKOUT_SECONDS="60"):
        yield


@pytest.mark.usefixtures("lockout_of_three")
def test_the_threshold_and_lock_length_are_settings(app: Flask) -> None:
    member = make_member(make_tenant(), Role.admin)
    _burn_a_session(app, member, wrong=3)
    ttl = get_redis().ttl(f"{mfa.LOCK_PREFIX}:locked:{member.user_id}")
    assert 0 < ttl <= 60
    client, headers = _log_in(app, member)
    locked = _verify(client, headers, member.totp_code())
    _assert_locked(locked)
    assert int(locked.headers["Retry-After"]) <= 60


@pytest.fixture
def doubling_lock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Three wrong codes lock for 60 s, and repeated locks are capped at 150 s."""
    monkeypatch.setattr(mfa, "MAX_LOCK_SECONDS", 150)
    with settings_env(MFA_LOCKOUT_FAILURES="3", MFA_LOCKOUT_SECONDS="60"):
        yield


@pytest.mark.usefixtures("doubling_lock")
def test_each_repeated_lock_lasts_twice_as_long_up_to_the_cap(app: Flask) -> None:
    """Else a guesser gets a fixed number of codes per lock period, forever."""
    member = make_member(make_tenant(), Role.admin)
    lengths = []
    for _ in range(4):
        _burn_a_session(app, member, wrong=3)
        lengths.append(int(get_redis().ttl(f"{mfa.LOCK_PREFIX}:locked:{member.user_id}")))
        client, headers = _log_in(app, member)
        locked = _verify(client, headers, member.totp_code())
        assert locked.status_code == 429 and problem_code(locked) == "rate_limited"
        assert 0 < int(locked.headers["Retry-After"]) <= lengths[-1]
        _expire_lock(member)
    assert 0 < lengths[0] <= 60 and 60 < lengths[1] <= 120
    assert 120 < lengths[2] <= 150 and 120 < lengths[3] <= 150
    assert [e.details["locked_seconds"] for e in sorted(
        _lock_events(member), key=lambda e: e.occurred_at)] == [60, 120, 150, 150]


@pytest.mark.usefixtures("doubling_lock")
def test_the_doubling_is_forgotten_with_its_streak(app: Flask) -> None:
    member = make_member(make_tenant(), Role.admin)
    _burn_a_session(app, member, wrong=3)
    _expire_lock(member)
    get_redis().delete(f"{mfa.LOCK_PREFIX}:streak:{member.user_id}")  # as if a day passed
    _burn_a_session(app, member, wrong=3)
    assert 0 < get_redis().ttl(f"{mfa.LOCK_PREFIX}:locked:{member.user_id}") <= 60


def test_a_valid_recovery_code_is_refused_while_locked(app: Flask) -> None:
    """The lock covers every second factor: a guessed (or stolen) recovery code is not a
    way around it, and is not used up by the refused attempt."""
    member = make_member(make_tenant(), Role.admin)
    code = make_recovery_code(member, "qrst-uvwx-yz23")
    _burn_a_session(app, member)
    _burn_a_session(app, member)
    client, headers = _log_in(app, member)
    _assert_locked(_verify(client, headers, code))
    _assert_locked(_verify(client, headers, code.upper().replace("-", "")))
    assert client.get(ME).get_json()["session"] == "mfa_pending"
    with tenant_session(member.tenant_id) as db:
        row = db.scalars(select(RecoveryCode).where(
            RecoveryCode.user_id == member.user_id)).one()
        assert row.used_at is None
    _expire_lock(member)
    assert _verify(client, headers, code).status_code == 200  # it was valid all along
    assert client.get(ME).get_json()["session"] == "full"


def test_verification_fails_closed_while_redis_is_down(app: Flask, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Redis the lockout cannot be told: no code is checked at all (503). Only the
    lockout's client is cut off, so the shared Redis (and the limiter) stay up."""
    unreachable = redis.Redis(unix_socket_path=str(tmp_path / "no-redis.sock"))
    monkeypatch.setattr(mfa, "get_redis", lambda: unreachable)
    member = make_member(make_tenant(), Role.admin)
    pending = make_session(member, SessionState.mfa_pending)
    client = make_client(app, pending)
    response = _verify(client, {"X-CSRF-Token": pending.csrf}, member.totp_code())
    assert response.status_code == 503, response.get_json()
    assert problem_code(response) == "dependency_unavailable"
    assert client.get(ME).get_json()["session"] == "mfa_pending"
