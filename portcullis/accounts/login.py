"""Login, logout and password reset.

Unknown email and wrong password are indistinguishable: same error, same bcrypt work, an
audit write either way. ``email_not_verified`` is said only after a correct password.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from portcullis.accounts import email_tokens, lookup, passwords, sessions
from portcullis.accounts.identity import Principal
from portcullis.accounts.models import (
    Membership,
    MemberStatus,
    SessionState,
    TokenPurpose,
    User,
)
from portcullis.accounts.sessions import IssuedSession
from portcullis.alerts.service import identity_used, login_failed
from portcullis.audit.service import Target, record
from portcullis.callers import Caller, Kind, Role
from portcullis.db import system_session, tenant_session
from portcullis.email.service import queue
from portcullis.errors import Forbidden, Unauthenticated
from portcullis.redaction import account_label


def _invalid() -> Unauthenticated:
    return Unauthenticated("invalid_credentials", "The email or password is wrong.")


def as_user(caller: Caller, tenant_id: uuid.UUID, user_id: uuid.UUID,
            role: Role | None = None) -> Caller:
    """``caller`` (anonymous until now) as the user it has just shown to be, from the same
    address: the actor of what their proof (a password, a token) lets them do."""
    return Caller(Kind.user, tenant_id, user_id, role, origin=caller.origin)


def login(caller: Caller, email: str, password: str) -> IssuedSession:
    """Open a session for the email's user (restricted until the second factor is done)."""
    origin = caller.origin
    found = lookup.user_by_email(email)
    if found is None:
        passwords.verify_password(password, None)
        with system_session() as db:
            record(db, caller, "auth.login_failed",
                   details={"reason": "unknown_email", "account": account_label(email)})
            login_failed(db, None, email, origin.ip, caller)
        raise _invalid()
    with tenant_session(found.tenant_id) as db:
        user, membership = db.execute(
            select(User, Membership).join(Membership, Membership.user_id == User.id)
            .where(User.id == found.id)).one()
        ok = passwords.verify_password(password, user.password_hash)
        user_caller = as_user(caller, found.tenant_id, user.id, Role(membership.role))
        if not ok or membership.status == MemberStatus.removed:
            record(db, user_caller, "auth.login_failed", Target("user", str(user.id)),
                   {"reason": "wrong_password"})
            login_failed(db, found.tenant_id, email, origin.ip, user_caller)
    if not ok or membership.status == MemberStatus.removed:
        raise _invalid()
    if user.email_verified_at is None:
        raise Forbidden("email_not_verified", "Confirm your email address first.")
    if membership.status != MemberStatus.active:
        raise Forbidden("member_suspended", "Your membership is suspended.")
    if user.mfa_enabled:
        state = SessionState.mfa_pending
    elif Role(membership.role) is Role.viewonly:
        state = SessionState.full
    else:
        state = SessionState.mfa_enrollment
    with tenant_session(found.tenant_id) as db:
        issued = sessions.open_session(db, user_caller, state)
        record(db, user_caller, "auth.login_succeeded", Target("session", str(issued.id)),
               {"session": state.value})
        identity_used(db, found.tenant_id, f"user:{user.id}", origin.ip, user_caller, "Login")
    return issued


def logout(principal: Principal) -> None:
    """Revoke the principal's session server-side."""
    caller, session_id = principal.caller, principal.session_id
    assert caller.tenant_id is not None and session_id is not None
    with tenant_session(caller.tenant_id) as db:
        sessions.revoke(db, session_id)
        record(db, caller, "auth.logout", Target("session", str(session_id)))


def forgot_password(caller: Caller, email: str) -> None:
    """Email a reset link to the address's user, if there is one (the answer is the same)."""
    found = lookup.user_by_email(email)
    if found is None:
        return
    with tenant_session(found.tenant_id) as db:
        queue(db, found.tenant_id, "reset_password", user_id=found.id)
        record(db, caller, "auth.password_reset_requested", Target("user", str(found.id)),
               tenant_id=found.tenant_id)


def reset_password(caller: Caller, token: str, new_password: str) -> None:
    """Set a new password with a reset token; every session of the user is revoked."""
    passwords.check_policy(new_password)
    owner = email_tokens.owner_of(token)
    password_hash = passwords.hash_password(new_password)
    with tenant_session(owner.tenant_id) as db:
        row = email_tokens.consume(db, token, TokenPurpose.reset_password)
        user = db.get(User, row.user_id)
        assert user is not None
        user.password_hash = password_hash
        user.password_changed_at = datetime.now(UTC)
        if user.email_verified_at is None:
            user.email_verified_at = datetime.now(UTC)  # they proved they read the inbox
        revoked = sessions.revoke_all(db, user.id)
        record(db, as_user(caller, owner.tenant_id, user.id), "auth.password_reset",
               Target("user", str(user.id)), {"sessions_revoked": revoked})
        queue(db, owner.tenant_id, "password_changed", user_id=user.id)
