"""Login, logout and password reset.

Unknown email and wrong password are indistinguishable: same error, same bcrypt work, an
audit write either way. ``email_not_verified`` is said only after a correct password.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from portcullis.accounts import email_tokens, lookup, passwords, sessions
from portcullis.accounts.audit import record, user_actor
from portcullis.accounts.models import (
    Membership,
    MemberStatus,
    Role,
    SessionState,
    TokenPurpose,
    User,
)
from portcullis.accounts.notifications import AccountEmail, queue
from portcullis.accounts.sessions import IssuedSession
from portcullis.alerts import detection
from portcullis.audit.service import Actor, Origin, Target
from portcullis.db import system_session, tenant_session
from portcullis.errors import Forbidden, Unauthenticated
from portcullis.redaction import account_label


def _invalid() -> Unauthenticated:
    return Unauthenticated("invalid_credentials", "The email or password is wrong.")


def login(email: str, password: str, origin: Origin) -> IssuedSession:
    found = lookup.user_by_email(email)
    if found is None:
        passwords.verify_password(password, None)
        with system_session() as db:
            record(db, None, "auth.login_failed", Actor("anonymous"), origin,
                   details={"reason": "unknown_email", "account": account_label(email)})
            detection.login_failed(db, None, email, origin.ip, Actor("anonymous"))
        raise _invalid()
    with tenant_session(found.tenant_id) as db:
        user, membership = db.execute(
            select(User, Membership).join(Membership, Membership.user_id == User.id)
            .where(User.id == found.id)).one()
        ok = passwords.verify_password(password, user.password_hash)
        if not ok or membership.status == MemberStatus.removed:
            record(db, found.tenant_id, "auth.login_failed", user_actor(user.id), origin,
                   Target("user", str(user.id)), {"reason": "wrong_password"})
            detection.login_failed(db, found.tenant_id, email, origin.ip, user_actor(user.id))
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
        issued = sessions.open_session(db, found.tenant_id, user.id, state, origin)
        record(db, found.tenant_id, "auth.login_succeeded", user_actor(user.id), origin,
               Target("session", str(issued.id)), {"session": state.value})
        detection.identity_used(db, found.tenant_id, f"user:{user.id}", origin.ip,
                                user_actor(user.id), "Login")
    return issued


def logout(tenant_id: uuid.UUID, user_id: uuid.UUID, session_id: uuid.UUID,
           origin: Origin) -> None:
    with tenant_session(tenant_id) as db:
        sessions.revoke(db, session_id)
        record(db, tenant_id, "auth.logout", user_actor(user_id), origin,
               Target("session", str(session_id)))


def forgot_password(email: str, origin: Origin) -> None:
    found = lookup.user_by_email(email)
    if found is None:
        return
    with tenant_session(found.tenant_id) as db:
        queue(db, found.tenant_id, AccountEmail.reset_password, user_id=found.id)
        record(db, found.tenant_id, "auth.password_reset_requested", Actor("anonymous"),
               origin, Target("user", str(found.id)))


def reset_password(token: str, new_password: str, origin: Origin) -> None:
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
        record(db, owner.tenant_id, "auth.password_reset", user_actor(user.id), origin,
               Target("user", str(user.id)), {"sessions_revoked": revoked})
        queue(db, owner.tenant_id, AccountEmail.password_changed, user_id=user.id)
