"""TOTP enrolment and verification, recovery codes, and the five-strikes rule."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from portcullis import secrets_gen
from portcullis.accounts import sessions, totp
from portcullis.accounts.audit import record, user_actor
from portcullis.accounts.models import RecoveryCode, SessionState, User, UserSession
from portcullis.accounts.notifications import AccountEmail, queue
from portcullis.accounts.secretbox import open_sealed, seal
from portcullis.alerts import detection
from portcullis.audit.service import Origin, Target
from portcullis.db import tenant_session
from portcullis.errors import Conflict, Unauthenticated

MAX_FAILURES = 5
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


@dataclass(frozen=True)
class Enrolment:
    secret: str
    otpauth_uri: str


def _normalise_recovery(code: str) -> str:
    return code.strip().lower().replace("-", "").replace(" ", "")


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def enroll(tenant_id: uuid.UUID, user_id: uuid.UUID) -> Enrolment:
    """A fresh secret, pending until confirmed with a code from the app."""
    secret = totp.new_secret()
    with tenant_session(tenant_id) as db:
        user = db.get(User, user_id)
        assert user is not None
        user.totp_pending_secret = seal(secret)
        return Enrolment(secret, totp.provisioning_uri(secret, user.email))


def confirm(tenant_id: uuid.UUID, user_id: uuid.UUID, session_id: uuid.UUID, code: str,
            origin: Origin) -> list[str]:
    """Activate the pending secret; returns the 10 recovery codes (shown once)."""
    with tenant_session(tenant_id) as db:
        user = db.scalars(select(User).where(User.id == user_id).with_for_update()).one()
        if user.totp_pending_secret is None:
            raise Conflict("mfa_not_enrolling", "Start enrolment first.")
        step = totp.matching_step(open_sealed(user.totp_pending_secret), code, None)
        if step is not None:
            return _activate(db, tenant_id, user, step, session_id, origin)
    _fail(tenant_id, user_id, session_id, origin)


def _activate(db: Session, tenant_id: uuid.UUID, user: User, step: int,
              session_id: uuid.UUID, origin: Origin) -> list[str]:
    user.totp_secret, user.totp_pending_secret = user.totp_pending_secret, None
    user.totp_enabled_at = datetime.now(UTC)
    user.totp_last_step = step
    codes = _replace_recovery_codes(db, tenant_id, user.id)
    sessions.set_state(db, session_id, SessionState.full)
    record(db, tenant_id, "auth.mfa_enrolled", user_actor(user.id), origin,
           Target("user", str(user.id)))
    queue(db, tenant_id, AccountEmail.mfa_enabled, user_id=user.id)
    return codes


def _replace_recovery_codes(db: Session, tenant_id: uuid.UUID, user_id: uuid.UUID) -> list[str]:
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    db.add_all(RecoveryCode(tenant_id=tenant_id, user_id=user_id,
                            code_hash=secrets_gen.digest(_normalise_recovery(c))) for c in codes)
    return codes


def verify(tenant_id: uuid.UUID, user_id: uuid.UUID, session_id: uuid.UUID, code: str,
           origin: Origin) -> None:
    """Lift a pending session to full with a TOTP code (once per step) or a recovery code."""
    with tenant_session(tenant_id) as db:
        user = db.scalars(select(User).where(User.id == user_id).with_for_update()).one()
        if user.totp_secret is None:
            raise Conflict("mfa_not_enrolled", "Enrol an authenticator first.")
        step = totp.matching_step(open_sealed(user.totp_secret), code, user.totp_last_step)
        if step is not None:
            user.totp_last_step = step
            sessions.set_state(db, session_id, SessionState.full)
            record(db, tenant_id, "auth.mfa_succeeded", user_actor(user_id), origin,
                   Target("session", str(session_id)))
            return
        recovery = db.scalars(select(RecoveryCode).where(
            RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None),
            RecoveryCode.code_hash == secrets_gen.digest(_normalise_recovery(code)))
            .with_for_update()).first()
        if recovery is not None:
            recovery.used_at = datetime.now(UTC)
            sessions.set_state(db, session_id, SessionState.full)
            record(db, tenant_id, "auth.recovery_code_used", user_actor(user_id), origin,
                   Target("session", str(session_id)))
            queue(db, tenant_id, AccountEmail.recovery_codes_changed, user_id=user_id)
            return
    _fail(tenant_id, user_id, session_id, origin)


def _fail(tenant_id: uuid.UUID, user_id: uuid.UUID, session_id: uuid.UUID,
          origin: Origin) -> NoReturn:
    with tenant_session(tenant_id) as db:
        _count_failure(db, tenant_id, user_id, session_id, origin)
    raise Unauthenticated("invalid_mfa_code", "The code is wrong or was already used.")


def _count_failure(db: Session, tenant_id: uuid.UUID, user_id: uuid.UUID,
                   session_id: uuid.UUID, origin: Origin) -> None:
    failures = db.scalar(update(UserSession).where(UserSession.id == session_id)
                         .values(mfa_failures=UserSession.mfa_failures + 1)
                         .returning(UserSession.mfa_failures)) or 0
    ended = failures >= MAX_FAILURES
    if ended:
        sessions.revoke(db, session_id)
    record(db, tenant_id, "auth.mfa_failed", user_actor(user_id), origin,
           Target("session", str(session_id)), {"failures": failures, "session_ended": ended})
    detection.mfa_failed(db, tenant_id, user_id, origin.ip)
