"""Passkeys (WebAuthn) as a second factor equal to TOTP, verified by py_webauthn.

Registration is for a full or an ``mfa_enrollment`` session (it completes the enrolment)
and, from a full session, needs the same proof as enrolling TOTP there (``mfa.reauthenticate``);
authentication lifts an ``mfa_pending`` session to full, under the same per-user lock and
the same five strikes per session as a code. The relying party is ``PUBLIC_BASE_URL``: its
host is the rp id and its origin the only origin accepted.

Each options call gives the session a fresh challenge for its ceremony (replacing the one
before), kept in ``webauthn_challenges`` for 5 minutes; the answer consumes it with
``DELETE ... RETURNING`` in the transaction that judges the answer, whatever the outcome, so
a challenge is good for one ceremony of one session only. Counters: a genuine assertion
whose counter does not grow (for an authenticator that counts) is refused and audited
``auth.webauthn_counter_regressed`` (critical): the credential may have been cloned. The
counter is judged after the signature, so only the key's holder can raise that alarm.
Neither a public key nor a challenge is ever logged or audited.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    generate_challenge,
    options_to_json_dict,
    parse_authentication_credential_json,
)
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from config import get_settings
from portcullis.accounts import mfa, sessions
from portcullis.accounts.identity import Principal
from portcullis.accounts.models import (
    ChallengePurpose,
    PasskeyChallenge,
    PasskeyCredential,
    SessionState,
    User,
    UserSession,
)
from portcullis.alerts.service import mfa_failed
from portcullis.audit.service import Target, record
from portcullis.callers import Caller, Role
from portcullis.db import tenant_session
from portcullis.email.service import queue
from portcullis.errors import Conflict, Invalid, NotFound, Unauthenticated
from portcullis.pagination import Page, PageRequest, keyset

log = logging.getLogger(__name__)

RP_NAME = "Portcullis"
CHALLENGE_LIFETIME = timedelta(minutes=5)
TIMEOUT_MS = int(CHALLENGE_LIFETIME.total_seconds() * 1000)
MAX_TRANSPORTS = 8
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TRANSPORTS = {t.value for t in AuthenticatorTransport}


@dataclass(frozen=True)
class RelyingParty:
    id: str  # the host of PUBLIC_BASE_URL
    origin: str  # its origin, as a browser serialises it (no default port)


def relying_party() -> RelyingParty:
    url = urlsplit(get_settings().PUBLIC_BASE_URL)
    scheme, host = url.scheme.lower(), (url.hostname or "").lower()
    netloc = f"[{host}]" if ":" in host else host
    if url.port is not None and url.port != _DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{url.port}"
    return RelyingParty(host, f"{scheme}://{netloc}")


@dataclass(frozen=True)
class PasskeyView:
    id: uuid.UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None


def _view(row: PasskeyCredential) -> PasskeyView:
    return PasskeyView(row.id, row.name, row.created_at, row.last_used_at)


def _failed(status: int = 401) -> Unauthenticated | Invalid:
    detail = "The passkey could not be verified."
    return Invalid("webauthn_failed", detail) if status == 400 else Unauthenticated(
        "webauthn_failed", detail)


def _ids(principal: Principal) -> tuple[Caller, uuid.UUID, uuid.UUID, uuid.UUID]:
    caller, session_id = principal.caller, principal.session_id
    assert caller.tenant_id is not None and caller.user_id is not None, "a member's caller"
    assert session_id is not None, "a browser session"
    return caller, caller.tenant_id, caller.user_id, session_id


def _locked_user(db: Session, user_id: uuid.UUID) -> User:
    """The user's row, locked: their second factors change or count one at a time."""
    return db.scalars(select(User).where(User.id == user_id).with_for_update()).one()


def _passkeys(db: Session, user_id: uuid.UUID) -> list[PasskeyCredential]:
    return list(db.scalars(select(PasskeyCredential).where(PasskeyCredential.user_id == user_id)
                           .order_by(PasskeyCredential.created_at)))


def _descriptor(row: PasskeyCredential) -> PublicKeyCredentialDescriptor:
    return PublicKeyCredentialDescriptor(
        id=row.credential_id,
        transports=[AuthenticatorTransport(t) for t in row.transports if t in _TRANSPORTS])


# --------------------------------------------------------------------------- challenges

def _new_challenge(db: Session, tenant_id: uuid.UUID, session_id: uuid.UUID,
                   purpose: ChallengePurpose) -> bytes:
    """A fresh challenge for the session's next ``purpose`` ceremony, replacing any before."""
    challenge = generate_challenge()  # 64 random bytes
    now = datetime.now(UTC)
    expires_at = now + CHALLENGE_LIFETIME
    db.execute(insert(PasskeyChallenge).values(
        id=uuid.uuid4(), tenant_id=tenant_id, session_id=session_id, purpose=purpose.value,
        challenge=challenge, expires_at=expires_at, created_at=now,
    ).on_conflict_do_update(constraint="uq_webauthn_challenges_session_purpose", set_={
        "challenge": challenge, "expires_at": expires_at, "created_at": now}))
    return challenge


def _consume(db: Session, session_id: uuid.UUID,
             purpose: ChallengePurpose) -> tuple[bytes | None, str | None]:
    """The session's live challenge for ``purpose``, now used up; else why there is none."""
    row = db.execute(delete(PasskeyChallenge).where(
        PasskeyChallenge.session_id == session_id, PasskeyChallenge.purpose == purpose.value)
        .returning(PasskeyChallenge.challenge, PasskeyChallenge.expires_at)).first()
    if row is None:
        return None, "no_challenge"
    if row.expires_at <= datetime.now(UTC):
        return None, "challenge_expired"
    return row.challenge, None


# --------------------------------------------------------------------------- registration

def registration_options(principal: Principal, proof: mfa.Proof | None = None) -> dict[str, Any]:
    """Creation options (their JSON form) for a new passkey of the caller. From a full
    session they need the proof TOTP's enrolment needs there (a stolen session alone cannot
    add a second factor); an ``mfa_enrollment`` session has just given the password."""
    mfa.not_awaiting_code(principal)
    caller, tenant_id, user_id, session_id = _ids(principal)
    rp = relying_party()
    with tenant_session(tenant_id) as db:
        user = _locked_user(db, user_id)
        failure = None
        if principal.session_state is SessionState.full:
            failure = mfa.reauthenticate(db, caller, user, session_id, proof)
        if failure is None:
            challenge = _new_challenge(db, tenant_id, session_id, ChallengePurpose.registration)
            options = generate_registration_options(
                rp_id=rp.id, rp_name=RP_NAME, user_id=user.id.bytes, user_name=user.email,
                user_display_name=user.name, challenge=challenge, timeout=TIMEOUT_MS,
                attestation=AttestationConveyancePreference.NONE,
                authenticator_selection=AuthenticatorSelectionCriteria(
                    resident_key=ResidentKeyRequirement.DISCOURAGED,
                    user_verification=UserVerificationRequirement.PREFERRED),
                exclude_credentials=[_descriptor(p) for p in _passkeys(db, user_id)])
            return options_to_json_dict(options)
    raise failure


def _transports(credential: dict[str, Any]) -> list[str]:
    given = credential.get("response", {}).get("transports") or []
    return sorted({t for t in given if t in _TRANSPORTS})[:MAX_TRANSPORTS]


def register(principal: Principal, name: str, credential: dict[str, Any]) -> PasskeyView:
    """Verify the authenticator's answer to this session's registration challenge and store
    the passkey; an ``mfa_enrollment`` session becomes full. 400 ``webauthn_failed`` else."""
    mfa.not_awaiting_code(principal)
    caller, tenant_id, user_id, session_id = _ids(principal)
    rp = relying_party()
    with tenant_session(tenant_id) as db:
        user = _locked_user(db, user_id)
        challenge, reason = _consume(db, session_id, ChallengePurpose.registration)
        if challenge is not None:
            try:
                verified = verify_registration_response(
                    credential=credential, expected_challenge=challenge,
                    expected_rp_id=rp.id, expected_origin=rp.origin)
            except Exception as exc:  # noqa: BLE001 - whatever cannot be verified is refused
                log.info("passkey registration not verified: %s", type(exc).__name__)
                reason = "not_verified"
            else:
                stored = db.execute(insert(PasskeyCredential).values(
                    id=uuid.uuid4(), tenant_id=tenant_id, user_id=user_id,
                    credential_id=verified.credential_id,
                    public_key=verified.credential_public_key,
                    sign_count=verified.sign_count, transports=_transports(credential),
                    backup_eligible=(verified.credential_device_type
                                     is CredentialDeviceType.MULTI_DEVICE),
                    backed_up=verified.credential_backed_up, name=name,
                    created_at=datetime.now(UTC),
                ).on_conflict_do_nothing(index_elements=["credential_id"])
                    .returning(PasskeyCredential.id)).scalar()
                if stored is not None:
                    return _registered(db, principal, user, stored)
                reason = "already_registered"
        record(db, caller, "auth.webauthn_failed", Target("session", str(session_id)),
               {"step": "registration", "reason": reason})
    raise _failed(400)


def _registered(db: Session, principal: Principal, user: User,
                passkey_id: uuid.UUID) -> PasskeyView:
    caller, tenant_id, _, session_id = _ids(principal)
    row = db.get(PasskeyCredential, passkey_id)
    assert row is not None
    first_factor = not user.mfa_enabled
    user.passkey_enabled_at = user.passkey_enabled_at or datetime.now(UTC)
    completes = principal.session_state is SessionState.mfa_enrollment
    if completes:
        sessions.set_state(db, session_id, SessionState.full)
    record(db, caller, "auth.webauthn_registered", Target("passkey", str(row.id)),
           {"name": row.name, "backup_eligible": row.backup_eligible,
            "first_factor": first_factor, "completes_enrolment": completes})
    queue(db, tenant_id, "passkey_added", user_id=user.id)
    return _view(row)


# --------------------------------------------------------------------------- authentication

def _awaiting(principal: Principal) -> None:
    if principal.session_state is not SessionState.mfa_pending:
        raise Conflict("mfa_not_pending", "This session is not waiting for a second factor.")


def authentication_options(principal: Principal) -> dict[str, Any]:
    """Request options (their JSON form) naming the caller's passkeys, for a session that
    awaits its second factor."""
    _awaiting(principal)
    _, tenant_id, user_id, session_id = _ids(principal)
    rp = relying_party()
    with tenant_session(tenant_id) as db:
        passkeys = _passkeys(db, user_id)
        if not passkeys:
            raise Conflict("mfa_not_enrolled", "No passkey is registered: use your code.")
        challenge = _new_challenge(db, tenant_id, session_id, ChallengePurpose.authentication)
        return options_to_json_dict(generate_authentication_options(
            rp_id=rp.id, challenge=challenge, timeout=TIMEOUT_MS,
            allow_credentials=[_descriptor(p) for p in passkeys],
            user_verification=UserVerificationRequirement.PREFERRED))


def authenticate(principal: Principal, credential: dict[str, Any]) -> None:
    """Lift a pending session to full with an assertion of one of the user's passkeys over
    this session's challenge, unless the user's second-factor step is locked."""
    _awaiting(principal)
    caller, tenant_id, user_id, session_id = _ids(principal)
    mfa.ensure_open(user_id)
    with tenant_session(tenant_id) as db:
        user = _locked_user(db, user_id)
        challenge, reason = _consume(db, session_id, ChallengePurpose.authentication)
        passkey: PasskeyCredential | None = None
        if challenge is not None:
            try:
                parsed = parse_authentication_credential_json(credential)
            except Exception as exc:  # noqa: BLE001 - whatever cannot be parsed is refused
                log.info("passkey assertion not parsed: %s", type(exc).__name__)
                reason = "not_verified"
            else:
                passkey = db.scalars(select(PasskeyCredential).where(
                    PasskeyCredential.user_id == user.id,
                    PasskeyCredential.credential_id == parsed.raw_id)).first()
                reason = ("unknown_credential" if passkey is None
                          else _judge(db, caller, user, passkey, parsed, challenge))
        if passkey is not None and reason is None:
            sessions.set_state(db, session_id, SessionState.full)
            record(db, caller, "auth.webauthn_succeeded", Target("session", str(session_id)),
                   {"webauthn_id": str(passkey.id)})
            return
        _count_failure(db, caller, session_id, reason or "not_verified", passkey)
    raise _failed()


def _judge(db: Session, caller: Caller, user: User, passkey: PasskeyCredential,
           credential: AuthenticationCredential, challenge: bytes) -> str | None:
    """None when the assertion verifies and its counter grew (the passkey's counter, flags
    and last use are then updated); else why not."""
    handle = credential.response.user_handle
    if handle is not None and handle != user.id.bytes:
        return "user_handle_mismatch"
    rp = relying_party()
    try:
        # The counter is judged below, once the signature is known to be the key's.
        verified = verify_authentication_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp.id,
            expected_origin=rp.origin, credential_public_key=passkey.public_key,
            credential_current_sign_count=0)
    except Exception as exc:  # noqa: BLE001 - whatever cannot be verified is refused
        log.info("passkey assertion not verified: %s", type(exc).__name__)
        return "not_verified"
    counted = verified.new_sign_count
    if (counted or passkey.sign_count) and counted <= passkey.sign_count:
        record(db, caller, "auth.webauthn_counter_regressed", Target("passkey", str(passkey.id)),
               {"stored_count": passkey.sign_count, "presented_count": counted})
        return "counter_regressed"
    passkey.sign_count = counted
    passkey.backed_up = verified.credential_backed_up
    passkey.last_used_at = datetime.now(UTC)
    return None


def _count_failure(db: Session, caller: Caller, session_id: uuid.UUID, reason: str,
                   passkey: PasskeyCredential | None) -> None:
    """A refused assertion counts toward the session's five strikes and the user's alert
    window, as a wrong code does; an assertion cannot be guessed, so not toward the lock."""
    assert caller.tenant_id is not None and caller.user_id is not None
    failures = db.scalar(update(UserSession).where(UserSession.id == session_id)
                         .values(mfa_failures=UserSession.mfa_failures + 1)
                         .returning(UserSession.mfa_failures)) or 0
    ended = failures >= mfa.MAX_FAILURES
    if ended:
        sessions.revoke(db, session_id)
    details: dict[str, Any] = {"step": "authentication", "reason": reason,
                               "failures": failures, "session_ended": ended}
    if passkey is not None:
        details["webauthn_id"] = str(passkey.id)
    record(db, caller, "auth.webauthn_failed", Target("session", str(session_id)), details)
    mfa_failed(db, caller.tenant_id, caller.user_id, caller.origin.ip)


# --------------------------------------------------------------------------- management

def list_own(principal: Principal, page: PageRequest) -> Page[PasskeyView]:
    """The caller's passkeys, newest first (never anyone else's)."""
    _, tenant_id, user_id, _ = _ids(principal)
    with tenant_session(tenant_id) as db:
        found = keyset(db, select(PasskeyCredential).where(PasskeyCredential.user_id == user_id),
                       [PasskeyCredential.created_at, PasskeyCredential.id],
                       [datetime, uuid.UUID], page)
        return found.map(_view)


def remove(principal: Principal, passkey_id: uuid.UUID) -> None:
    """Remove one of the caller's passkeys (anyone else's is not found). The last second
    factor of a role that needs MFA stays: 409 ``last_factor``."""
    caller, tenant_id, user_id, _ = _ids(principal)
    with tenant_session(tenant_id) as db:
        user = _locked_user(db, user_id)
        passkey = db.scalars(select(PasskeyCredential).where(
            PasskeyCredential.id == passkey_id, PasskeyCredential.user_id == user_id)).first()
        if passkey is None:
            raise NotFound("passkey")
        others = db.scalar(select(func.count()).select_from(PasskeyCredential).where(
            PasskeyCredential.user_id == user_id, PasskeyCredential.id != passkey_id)) or 0
        if not others and user.totp_enabled_at is None and caller.role is not Role.viewonly:
            raise Conflict("last_factor", "This is your last second factor and your role needs "
                           "one: enrol another (TOTP or a passkey) first.")
        name = passkey.name
        db.delete(passkey)
        if not others:
            user.passkey_enabled_at = None
        record(db, caller, "auth.webauthn_removed", Target("passkey", str(passkey_id)),
               {"name": name, "remaining": others})
        queue(db, tenant_id, "passkey_removed", user_id=user_id)
