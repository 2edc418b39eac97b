"""Replacing an enrolled authenticator needs proof: a current TOTP or recovery code, or the
password, given to POST /auth/mfa/enroll (and good for this session for 5 minutes). A stolen
full session alone cannot move the second factor to another device. Wrong proofs count: a
wrong code toward the per-user lockout, a wrong password with the failed logins."""

from __future__ import annotations

import pyotp
import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.test import TestResponse

from portcullis.accounts import mfa
from portcullis.accounts.models import RecoveryCode, Role, SessionState, User
from portcullis.audit.models import AuditEvent
from portcullis.db import system_session, tenant_session
from portcullis.redis_client import get_redis
from tests.support.factories import LoggedIn, Member, make_member, make_session, make_tenant
from tests.support.web import log_in, make_client, problem_code

pytestmark = pytest.mark.usefixtures("stack")

ENROLL = "/api/v1/auth/mfa/enroll"
CONFIRM = "/api/v1/auth/mfa/enroll/confirm"
VERIFY = "/api/v1/auth/mfa/verify"
ME = "/api/v1/auth/me"
WRONG_PASSWORD = "definitely not the password"


def _enroll(app: Flask, who: LoggedIn, body: dict[str, str] | None = None) -> TestResponse:
    client = make_client(app, who)
    headers = {"X-CSRF-Token": who.csrf}
    return client.post(ENROLL, headers=headers) if body is None else client.post(
        ENROLL, headers=headers, json=body)


def _confirm(app: Flask, who: LoggedIn, secret: str) -> TestResponse:
    return make_client(app, who).post(CONFIRM, headers={"X-CSRF-Token": who.csrf},
                                      json={"code": pyotp.TOTP(secret).now()})


def _pending_secret(member: Member) -> bytes | None:
    with tenant_session(member.tenant_id) as db:
        user = db.get(User, member.user_id)
        assert user is not None
        return user.totp_pending_secret


def _second_factor_works(app: Flask, member: Member, code: str) -> bool:
    pending = make_session(member, SessionState.mfa_pending)
    response = make_client(app, pending).post(VERIFY, headers={"X-CSRF-Token": pending.csrf},
                                              json={"code": code})
    return response.status_code == 200


@pytest.fixture
def enrolled() -> tuple[Member, LoggedIn]:
    member = make_member(make_tenant(), Role.admin)
    return member, make_session(member)


def test_a_full_session_cannot_replace_totp_without_proof(
        app: Flask, enrolled: tuple[Member, LoggedIn]) -> None:
    member, session = enrolled
    for body in (None, {}):
        refused = _enroll(app, session, body)
        assert refused.status_code == 403, refused.get_json()
        assert problem_code(refused) == "reauthentication_required"
        assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert _pending_secret(member) is None
    # Confirming has nothing to confirm, whatever secret the thief brings.
    confirm = _confirm(app, session, pyotp.random_base32())
    assert confirm.status_code == 409 and problem_code(confirm) == "mfa_not_enrolling"
    assert _second_factor_works(app, member, member.totp_code())  # the old one still rules


def test_a_current_code_allows_replacing_totp(app: Flask,
                                              enrolled: tuple[Member, LoggedIn]) -> None:
    member, session = enrolled
    started = _enroll(app, session, {"code": member.totp_code()})
    assert started.status_code == 200, started.get_json()
    new_secret = started.get_json()["secret"]
    confirmed = _confirm(app, session, new_secret)
    assert confirmed.status_code == 200, confirmed.get_json()
    assert len(confirmed.get_json()["recovery_codes"]) == 10

    assert not _second_factor_works(app, member, member.totp_code(1))  # the old app's code
    member.totp_secret = new_secret
    assert _second_factor_works(app, member, member.totp_code(1))
    with system_session() as db:
        event = db.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == member.tenant_id,
            AuditEvent.action == "auth.mfa_enrolled")).one()
    assert event.details == {"replaced": True}


def test_the_password_allows_replacing_totp(app: Flask,
                                            enrolled: tuple[Member, LoggedIn]) -> None:
    member, session = enrolled
    started = _enroll(app, session, {"password": member.password})
    assert started.status_code == 200, started.get_json()
    # The proof covers this session for a few minutes: asking again needs none.
    again = _enroll(app, session)
    assert again.status_code == 200, again.get_json()
    confirmed = _confirm(app, session, again.get_json()["secret"])
    assert confirmed.status_code == 200, confirmed.get_json()
    # Used up by the replacement: the next one needs a proof again.
    assert problem_code(_enroll(app, session)) == "reauthentication_required"


def test_a_recovery_code_allows_replacing_totp_once(app: Flask) -> None:
    member = make_member(make_tenant(), Role.admin, mfa=False)
    enrolling = make_session(member, SessionState.mfa_enrollment)
    secret = _enroll(app, enrolling).get_json()["secret"]
    codes = _confirm(app, enrolling, secret).get_json()["recovery_codes"]
    member.totp_secret = secret

    first, second = make_session(member), make_session(member)
    assert _enroll(app, first, {"code": codes[0]}).status_code == 200
    reused = _enroll(app, second, {"code": codes[0]})
    assert reused.status_code == 401 and problem_code(reused) == "invalid_mfa_code"
    with tenant_session(member.tenant_id) as db:
        used = db.scalars(select(RecoveryCode).where(RecoveryCode.user_id == member.user_id,
                                                     RecoveryCode.used_at.is_not(None))).all()
    assert len(used) == 1


def test_wrong_proofs_are_refused(app: Flask, enrolled: tuple[Member, LoggedIn]) -> None:
    member, session = enrolled
    for body, code in (({"password": WRONG_PASSWORD}, "invalid_credentials"),
                       ({"code": member.wrong_totp_code()}, "invalid_mfa_code"),
                       ({"code": "not-a-code"}, "invalid_mfa_code")):
        response = _enroll(app, session, body)
        assert response.status_code == 401, response.get_json()
        assert problem_code(response) == code
        assert WRONG_PASSWORD not in response.get_data(as_text=True)
    assert _pending_secret(member) is None
    assert problem_code(_enroll(app, session)) == "reauthentication_required"  # no proof was kept
    both = _enroll(app, session, {"code": member.totp_code(), "password": member.password})
    assert both.status_code == 400 and problem_code(both) == "validation_error"


def test_the_proof_belongs_to_its_session_and_lasts_five_minutes(
        app: Flask, enrolled: tuple[Member, LoggedIn]) -> None:
    member, session = enrolled
    other = make_session(member)  # say, a stolen cookie of the same user
    secret = _enroll(app, session, {"password": member.password}).get_json()["secret"]
    refused = _confirm(app, other, secret)
    assert refused.status_code == 403 and problem_code(refused) == "reauthentication_required"
    ttl = get_redis().ttl(f"{mfa.REAUTH_PREFIX}:{session.session_id}")
    assert 0 < ttl <= 300
    get_redis().delete(f"{mfa.REAUTH_PREFIX}:{session.session_id}")  # as if 5 minutes passed
    late = _confirm(app, session, secret)
    assert late.status_code == 403 and problem_code(late) == "reauthentication_required"
    assert _second_factor_works(app, member, member.totp_code())


def test_first_enrolment_needs_no_body(app: Flask) -> None:
    member = make_member(make_tenant(), Role.staff, mfa=False)
    enrolling = make_session(member, SessionState.mfa_enrollment)
    started = _enroll(app, enrolling)
    assert started.status_code == 200, started.get_json()
    assert started.get_json()["otpauth_uri"].startswith("otpauth://totp/")
    assert _confirm(app, enrolling, started.get_json()["secret"]).status_code == 200
    assert make_client(app, enrolling).get(ME).get_json()["session"] == "full"


def test_a_full_session_needs_the_password_for_a_first_enrolment(app: Flask) -> None:
    """A viewonly member may have no second factor: a thief with their full session must
    not be able to enrol one (and so lock the owner out of their own account)."""
    member = make_member(make_tenant(), Role.viewonly)
    session = make_session(member)  # five tries: the route allows 5 a minute per session
    for body in (None, {}, {"code": "123456"}):
        refused = _enroll(app, session, body)
        assert refused.status_code == 403, (body, refused.get_json())
        assert problem_code(refused) == "reauthentication_required"
        assert refused.headers["Content-Type"].startswith("application/problem+json")
    wrong = _enroll(app, session, {"password": WRONG_PASSWORD})
    assert wrong.status_code == 401 and problem_code(wrong) == "invalid_credentials"
    assert _pending_secret(member) is None
    assert problem_code(_enroll(app, session)) == "reauthentication_required"  # no proof was kept

    session = make_session(member)  # the owner, in another session, with the password
    started = _enroll(app, session, {"password": member.password})
    assert started.status_code == 200, started.get_json()
    confirmed = _confirm(app, session, started.get_json()["secret"])
    assert confirmed.status_code == 200, confirmed.get_json()
    assert len(confirmed.get_json()["recovery_codes"]) == 10
    # The proof was used up by the enrolment: replacing it now needs a new one.
    assert problem_code(_enroll(app, session)) == "reauthentication_required"


def test_wrong_codes_at_reenrolment_count_toward_the_lockout(
        app: Flask, enrolled: tuple[Member, LoggedIn]) -> None:
    member, session = enrolled
    for _ in range(5):
        wrong = _enroll(app, session, {"code": member.wrong_totp_code()})
        assert problem_code(wrong) == "invalid_mfa_code"
    pending = make_session(member, SessionState.mfa_pending)
    client = make_client(app, pending)
    for _ in range(5):  # the 10th wrong code for this user locks the second factor
        response = client.post(VERIFY, headers={"X-CSRF-Token": pending.csrf},
                               json={"code": member.wrong_totp_code()})
        assert problem_code(response) == "invalid_mfa_code"
    other = make_session(member)
    locked = _enroll(app, other, {"code": member.totp_code()})
    assert locked.status_code == 429 and problem_code(locked) == "rate_limited"
    assert int(locked.headers["Retry-After"]) > 0
    assert _pending_secret(member) is None


def test_wrong_passwords_at_reenrolment_count_as_failed_logins(
        app: Flask, enrolled: tuple[Member, LoggedIn]) -> None:
    member, session = enrolled
    for _ in range(5):
        assert problem_code(_enroll(app, session, {"password": WRONG_PASSWORD})) == \
            "invalid_credentials"
    for _ in range(5):  # five more failures at the login make ten for the account
        response = log_in(make_client(app), member.email, WRONG_PASSWORD)
        assert problem_code(response) == "invalid_credentials"
    blocked = log_in(make_client(app), member.email, member.password)
    assert blocked.status_code == 429 and problem_code(blocked) == "rate_limited"
    # ... and the same budget stops password proofs from another session too.
    other = _enroll(app, make_session(member), {"password": member.password})
    assert other.status_code == 429 and problem_code(other) == "rate_limited"
    with system_session() as db:
        failed = db.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == member.tenant_id,
            AuditEvent.action == "auth.login_failed")).all()
    assert sum(e.details.get("step") == "reauthentication" for e in failed) == 5
