"""TOTP enrolment and verification, recovery codes, the five-strikes rule per session, the
lockout per user, and the proof that replacing an enrolled authenticator needs.

Per session, five wrong codes end it; but a password holder can log in again for five
more, so wrong codes are also counted per user across sessions (``MFA_LOCKOUT_*``): past
the threshold the second-factor step is locked for the user, even for a correct code, and
the event is audited, alerted and mailed to the user. A lock that follows another within a
day lasts twice as long as that one (up to a day). Counters live in Redis next to the
detection windows; without Redis the lock cannot be told, so the step fails closed (503).
"""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import redis
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from config import get_settings
from portcullis import secrets_gen
from portcullis.accounts import passwords, sessions, totp
from portcullis.accounts.identity import Principal
from portcullis.accounts.models import RecoveryCode, SessionState, User, UserSession
from portcullis.alerts.service import count_in_window, login_failed, mfa_failed, mfa_locked
from portcullis.audit.service import Target, record
from portcullis.callers import Caller
from portcullis.db import tenant_session
from portcullis.email.service import queue
from portcullis.errors import (
    Conflict,
    DependencyUnavailable,
    DomainError,
    Forbidden,
    Unauthenticated,
)
from portcullis.redis_client import get_redis
from portcullis.secretbox import open_sealed, seal

log = logging.getLogger(__name__)

MAX_FAILURES = 5
RECOVERY_CODES = 10
REAUTH_SECONDS = 300  # a proof lets its session replace the authenticator for 5 minutes
LOCK_PREFIX = "portcullis:mfa-lock"
REAUTH_PREFIX = "portcullis:mfa-reauth"
STREAK_SECONDS = 24 * 3600  # a lock that follows another within a day is a repeated one
MAX_LOCK_SECONDS = 24 * 3600  # repeated locks double up to a day
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


@dataclass(frozen=True)
class Enrolment:
    secret: str
    otpauth_uri: str


@dataclass(frozen=True)
class Proof:
    """What re-enrolment accepts: a current TOTP or unused recovery code, or the password."""

    code: str | None = None
    password: str | None = None


class Locked(DomainError):
    """The user's second-factor step is locked; views add ``Retry-After``."""

    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__("rate_limited", "Too many wrong codes for this account: the "
                         "second-factor step is locked for a while.")
        self.retry_after = retry_after


def _invalid_code() -> Unauthenticated:
    return Unauthenticated("invalid_mfa_code", "The code is wrong or was already used.")


def _normalise_recovery(code: str) -> str:
    return code.strip().lower().replace("-", "").replace(" ", "")


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


# --------------------------------------------------------------------------- lockout

def _failures_key(user_id: uuid.UUID) -> str:
    return f"{LOCK_PREFIX}:failures:{user_id}"


def _lock_key(user_id: uuid.UUID) -> str:
    return f"{LOCK_PREFIX}:locked:{user_id}"


def _streak_key(user_id: uuid.UUID) -> str:
    """How many locks in a row: forgotten a day after the last one ends."""
    return f"{LOCK_PREFIX}:streak:{user_id}"


def _lock_length(previous: int) -> int:
    """The first lock lasts MFA_LOCKOUT_SECONDS; each repeated one twice the one before, up
    to MAX_LOCK_SECONDS (so the lock is no fixed 10 guesses per 15 minutes, forever)."""
    base = get_settings().MFA_LOCKOUT_SECONDS
    return int(min(base * 2 ** min(previous, 32), max(base, MAX_LOCK_SECONDS)))


def lock_remaining(user_id: uuid.UUID) -> int:
    """Seconds the user's second-factor step stays locked; 0 when open."""
    try:
        ttl = int(cast(int, get_redis().ttl(_lock_key(user_id))))
    except redis.RedisError as exc:
        raise DependencyUnavailable("redis", "the MFA lockout cannot be checked") from exc
    if ttl == -2:  # no lock
        return 0
    return max(ttl, 1) if ttl >= 0 else get_settings().MFA_LOCKOUT_SECONDS


def _ensure_open(user_id: uuid.UUID) -> None:
    remaining = lock_remaining(user_id)
    if remaining:
        raise Locked(remaining)


def _count_toward_lock(db: Session, caller: Caller) -> None:
    tenant_id, user_id = _ids(caller)
    settings = get_settings()
    window = settings.MFA_LOCKOUT_WINDOW_SECONDS
    try:
        failures = count_in_window(_failures_key(user_id), window)
        if failures < settings.MFA_LOCKOUT_FAILURES:
            return
        client = get_redis()
        lock_for = _lock_length(int(cast(bytes | None, client.get(_streak_key(user_id))) or 0))
        if not client.set(_lock_key(user_id), 1, nx=True, ex=lock_for):
            return
        with client.pipeline() as pipe:  # the next lock within a day of this one's end doubles
            pipe.incr(_streak_key(user_id))
            pipe.expire(_streak_key(user_id), lock_for + STREAK_SECONDS)
            pipe.delete(_failures_key(user_id))  # the count starts afresh after the lock
            pipe.execute()
    except redis.RedisError as exc:  # the next attempt's lock check fails closed
        log.warning("MFA lockout not counted, Redis unavailable: %s", type(exc).__name__)
        return
    record(db, caller, "auth.mfa_locked", Target("user", str(user_id)),
           {"failures": failures, "window_seconds": window, "locked_seconds": lock_for})
    mfa_locked(db, tenant_id, user_id, caller.origin.ip, failures, window, lock_for)
    queue(db, tenant_id, "mfa_locked", user_id=user_id)


def _ids(caller: Caller) -> tuple[uuid.UUID, uuid.UUID]:
    assert caller.tenant_id is not None and caller.user_id is not None, "a member's caller"
    return caller.tenant_id, caller.user_id


def _wrong_code(db: Session, caller: Caller, target: Target, details: dict[str, object], *,
                guessed: bool = True) -> None:
    """Audit a wrong code and feed the alert rule; a guess at the user's real second factor
    (not a code for a secret being enrolled) also counts toward the lockout."""
    tenant_id, user_id = _ids(caller)
    record(db, caller, "auth.mfa_failed", target, details)
    mfa_failed(db, tenant_id, user_id, caller.origin.ip)
    if guessed:
        _count_toward_lock(db, caller)


# --------------------------------------------------------------------------- re-authentication

def _reauth_key(session_id: uuid.UUID) -> str:
    return f"{REAUTH_PREFIX}:{session_id}"


def _mark_reauthenticated(session_id: uuid.UUID) -> None:
    try:
        get_redis().set(_reauth_key(session_id), 1, ex=REAUTH_SECONDS)
    except redis.RedisError as exc:
        raise DependencyUnavailable("redis", "re-authentication cannot be recorded") from exc


def _reauthenticated(session_id: uuid.UUID) -> bool:
    try:
        return bool(get_redis().exists(_reauth_key(session_id)))
    except redis.RedisError as exc:
        raise DependencyUnavailable("redis", "re-authentication cannot be checked") from exc


def _forget_reauthentication(session_id: uuid.UUID) -> None:
    try:
        get_redis().delete(_reauth_key(session_id))
    except redis.RedisError as exc:  # it expires by itself within REAUTH_SECONDS
        log.warning("re-authentication mark not cleared: %s", type(exc).__name__)


def _reauthentication_required(enrolled: bool = True) -> Forbidden:
    if not enrolled:
        return Forbidden("reauthentication_required", "Enrolling an authenticator from a "
                         "signed-in session needs your password.")
    return Forbidden("reauthentication_required", "Replacing your authenticator needs your "
                     "current code (or a recovery code) or your password.")


def _accept_code(db: Session, tenant_id: uuid.UUID, user: User, code: str) -> str | None:
    """Consume a current TOTP code (each step once) or an unused recovery code; which one."""
    assert user.totp_secret is not None
    step = totp.matching_step(open_sealed(user.totp_secret), code, user.totp_last_step)
    if step is not None:
        user.totp_last_step = step
        return "totp"
    recovery = db.scalars(select(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None),
        RecoveryCode.code_hash == secrets_gen.digest(_normalise_recovery(code)))
        .with_for_update()).first()
    if recovery is None:
        return None
    recovery.used_at = datetime.now(UTC)
    queue(db, tenant_id, "recovery_codes_changed", user_id=user.id)
    return "recovery_code"


def _reauthenticate(db: Session, caller: Caller, user: User, session_id: uuid.UUID,
                    proof: Proof | None) -> DomainError | None:
    """None when the session proved itself (now, or in the last REAUTH_SECONDS); else the
    error to raise once the failure's audit and counters are committed. Without an enrolled
    authenticator only the password proves anything."""
    enrolled = user.totp_secret is not None
    if proof is None or (proof.code is None and proof.password is None):
        return None if _reauthenticated(session_id) else _reauthentication_required(enrolled)
    if proof.password is not None:
        if passwords.verify_password(proof.password, user.password_hash):
            _mark_reauthenticated(session_id)
            return None
        record(db, caller, "auth.login_failed", Target("user", str(user.id)),
               {"reason": "wrong_password", "step": "reauthentication"})
        login_failed(db, caller.tenant_id, user.email, caller.origin.ip, caller)
        return Unauthenticated("invalid_credentials", "The password is wrong.")
    assert proof.code is not None
    if not enrolled:
        return _reauthentication_required(enrolled)
    _ensure_open(user.id)
    method = _accept_code(db, _ids(caller)[0], user, proof.code)
    if method is None:
        _wrong_code(db, caller, Target("session", str(session_id)),
                    {"step": "reauthentication"})
        return _invalid_code()
    if method == "recovery_code":
        record(db, caller, "auth.recovery_code_used", Target("session", str(session_id)),
               {"step": "reauthentication"})
    _mark_reauthenticated(session_id)
    return None


# --------------------------------------------------------------------------- enrolment

def _session_of(principal: Principal) -> tuple[Caller, uuid.UUID]:
    assert principal.session_id is not None, "a browser session"
    return principal.caller, principal.session_id


def _not_awaiting_code(principal: Principal) -> None:
    """Enrolment is for a full or an ``mfa_enrollment`` session; one awaiting its second
    factor must give it first (the access guard answers this before the body is read)."""
    if principal.session_state is SessionState.mfa_pending:
        raise Forbidden("mfa_required", "Verify your MFA code first.")


def enroll(principal: Principal, proof: Proof | None = None) -> Enrolment:
    """A fresh secret, pending until confirmed with a code from the app. Only a session that
    has just logged in with the password to enrol (``mfa_enrollment``) needs no proof: from a
    full session, or to replace an enrolled authenticator, a stolen session alone can
    neither add a second factor (and lock its owner out) nor move it."""
    _not_awaiting_code(principal)
    caller, session_id = _session_of(principal)
    tenant_id, user_id = _ids(caller)
    full_session = principal.session_state is SessionState.full
    with tenant_session(tenant_id) as db:
        user = db.scalars(select(User).where(User.id == user_id).with_for_update()).one()
        failure = None
        if user.totp_secret is not None or full_session:
            failure = _reauthenticate(db, caller, user, session_id, proof)
        if failure is None:
            secret = totp.new_secret()
            user.totp_pending_secret = seal(secret)
            return Enrolment(secret, totp.provisioning_uri(secret, user.email))
    raise failure


def confirm(principal: Principal, code: str) -> list[str]:
    """Activate the pending secret; returns the 10 recovery codes (shown once). Replacing an
    enrolled one needs this session's proof from ``enroll`` to be still fresh."""
    _not_awaiting_code(principal)
    caller, session_id = _session_of(principal)
    tenant_id, user_id = _ids(caller)
    with tenant_session(tenant_id) as db:
        user = db.scalars(select(User).where(User.id == user_id).with_for_update()).one()
        if user.totp_pending_secret is None:
            raise Conflict("mfa_not_enrolling", "Start enrolment first.")
        replacing = user.totp_secret is not None
        if replacing and not _reauthenticated(session_id):
            raise _reauthentication_required()
        step = totp.matching_step(open_sealed(user.totp_pending_secret), code, None)
        if step is not None:
            codes = _activate(db, caller, user, step, session_id, replacing)
            _forget_reauthentication(session_id)  # the proof is used up by the enrolment
            return codes
        # A wrong code for the secret being enrolled guesses nothing: no lockout count.
        _count_failure(db, caller, session_id, guessed=False)
    raise _invalid_code()


def _activate(db: Session, caller: Caller, user: User, step: int, session_id: uuid.UUID,
              replacing: bool) -> list[str]:
    tenant_id, _ = _ids(caller)
    user.totp_secret, user.totp_pending_secret = user.totp_pending_secret, None
    user.totp_enabled_at = datetime.now(UTC)
    user.totp_last_step = step
    codes = _replace_recovery_codes(db, tenant_id, user.id)
    sessions.set_state(db, session_id, SessionState.full)
    record(db, caller, "auth.mfa_enrolled", Target("user", str(user.id)),
           {"replaced": True} if replacing else None)
    queue(db, tenant_id, "mfa_enabled", user_id=user.id)
    return codes


def _replace_recovery_codes(db: Session, tenant_id: uuid.UUID, user_id: uuid.UUID) -> list[str]:
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    db.add_all(RecoveryCode(tenant_id=tenant_id, user_id=user_id,
                            code_hash=secrets_gen.digest(_normalise_recovery(c))) for c in codes)
    return codes


def verify(principal: Principal, code: str) -> None:
    """Lift a pending session to full with a TOTP code (once per step) or a recovery code,
    unless the user's second-factor step is locked."""
    if principal.session_state is not SessionState.mfa_pending:
        raise Conflict("mfa_not_pending", "This session is not waiting for a code.")
    caller, session_id = _session_of(principal)
    tenant_id, user_id = _ids(caller)
    with tenant_session(tenant_id) as db:
        user = db.scalars(select(User).where(User.id == user_id).with_for_update()).one()
        if user.totp_secret is None:
            raise Conflict("mfa_not_enrolled", "Enrol an authenticator first.")
        _ensure_open(user_id)  # under the user's row lock: concurrent guesses queue up
        method = _accept_code(db, tenant_id, user, code)
        if method is not None:
            sessions.set_state(db, session_id, SessionState.full)
            action = "auth.mfa_succeeded" if method == "totp" else "auth.recovery_code_used"
            record(db, caller, action, Target("session", str(session_id)))
            return
        _count_failure(db, caller, session_id)
    raise _invalid_code()


def _count_failure(db: Session, caller: Caller, session_id: uuid.UUID, *,
                   guessed: bool = True) -> None:
    failures = db.scalar(update(UserSession).where(UserSession.id == session_id)
                         .values(mfa_failures=UserSession.mfa_failures + 1)
                         .returning(UserSession.mfa_failures)) or 0
    ended = failures >= MAX_FAILURES
    if ended:
        sessions.revoke(db, session_id)
    _wrong_code(db, caller, Target("session", str(session_id)),
                {"failures": failures, "session_ended": ended}, guessed=guessed)


# What a passkey's enrolment and use share with TOTP's (portcullis.accounts.passkeys): the
# same proof from a full session, the same refusal while a code is awaited, the same lock.
reauthenticate = _reauthenticate
not_awaiting_code = _not_awaiting_code
ensure_open = _ensure_open
