"""Users, memberships, sessions and MFA, built directly in the database."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import pyotp
from flask.testing import FlaskClient

from portcullis import secrets_gen
from portcullis.accounts import totp
from portcullis.accounts.models import (
    Invitation,
    Membership,
    PasskeyCredential,
    RecoveryCode,
    Role,
    SessionState,
    User,
    UserSession,
)
from portcullis.accounts.passwords import hash_password
from portcullis.accounts.tokens import ABSOLUTE_LIFETIME, SessionClaims, csrf_token, issue
from portcullis.db import tenant_session
from portcullis.secretbox import seal
from tests.support.authenticator import Authenticator
from tests.support.factories.tenants import make_tenant

PASSWORD = "correct horse battery staple 42"


@dataclass
class Member:
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    membership_id: uuid.UUID
    email: str
    role: Role
    totp_secret: str | None = None
    password: str = PASSWORD

    def totp_code(self, step_offset: int = 0) -> str:
        assert self.totp_secret is not None
        return pyotp.TOTP(self.totp_secret).at(time.time() + 30 * step_offset)

    def wrong_totp_code(self) -> str:
        """Six digits that no time step within 90 seconds of now accepts (so one wrong code
        can be reused for a whole test)."""
        valid = {self.totp_code(offset) for offset in range(-3, 4)}
        while True:
            code = f"{secrets.randbelow(10 ** 6):06d}"
            if code not in valid:
                return code


def make_member(tenant_id: uuid.UUID, role: Role = Role.admin, email: str | None = None,
                *, mfa: bool | None = None, verified: bool = True) -> Member:
    """A member with a known password; TOTP enrolled unless viewonly (or ``mfa`` says)."""
    user_id, membership_id = uuid.uuid4(), uuid.uuid4()
    email = email or f"{role.value}-{user_id.hex[:10]}@example.com"
    enrolled = mfa if mfa is not None else role is not Role.viewonly
    secret = totp.new_secret() if enrolled else None
    with tenant_session(tenant_id) as db:
        db.add(User(id=user_id, tenant_id=tenant_id, email=email, name=f"{role.value} user",
                    password_hash=_password_hash(),
                    email_verified_at=datetime.now(UTC) if verified else None,
                    totp_secret=seal(secret) if secret else None,
                    totp_enabled_at=datetime.now(UTC) if secret else None))
        db.flush()
        db.add(Membership(id=membership_id, tenant_id=tenant_id, user_id=user_id,
                          role=role.value))
    return Member(tenant_id, user_id, membership_id, email, role, secret)


@lru_cache(maxsize=1)
def _password_hash() -> str:
    return hash_password(PASSWORD)


@dataclass
class LoggedIn:
    member: Member
    session_id: uuid.UUID
    cookie: str
    csrf: str

    @property
    def cookies(self) -> dict[str, str]:
        """The session and CSRF cookies a browser holds after this login."""
        return {"portcullis_session": self.cookie, "portcullis_csrf": self.csrf}

    def attach(self, client: FlaskClient) -> FlaskClient:
        for name, value in self.cookies.items():
            client.set_cookie(name, value, domain="localhost")
        return client


def make_session(member: Member, state: SessionState = SessionState.full) -> LoggedIn:
    now = datetime.now(UTC)
    session_id = uuid.uuid4()
    expires = now + ABSOLUTE_LIFETIME
    with tenant_session(member.tenant_id) as db:
        db.add(UserSession(id=session_id, tenant_id=member.tenant_id, user_id=member.user_id,
                           state=state.value, last_seen_at=now, expires_at=expires))
    token = issue(SessionClaims(member.user_id, member.tenant_id, session_id), expires)
    return LoggedIn(member, session_id, token, csrf_token(session_id))


def login(client: FlaskClient, role: Role = Role.admin,
          tenant_id: uuid.UUID | None = None) -> LoggedIn:
    member = make_member(tenant_id or make_tenant(), role)
    logged_in = make_session(member)
    logged_in.attach(client)
    return logged_in


def timedelta_ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


def make_recovery_code(member: Member, code: str = "qrst-uvwx-yz23") -> str:
    """A live recovery code of ``member``, stored as enrolment stores one (the digest of the
    code without dashes, lower case); the code as a person would type it."""
    digest = secrets_gen.digest(code.strip().lower().replace("-", "").replace(" ", ""))
    with tenant_session(member.tenant_id) as db:
        db.add(RecoveryCode(tenant_id=member.tenant_id, user_id=member.user_id,
                            code_hash=digest))
    return code


def make_invitation(inviter: Member, email: str, role: Role = Role.staff, *,
                    expires_in: timedelta = timedelta(days=1)) -> str:
    """A live invitation to ``email`` in the inviter's tenant, as if its email had been
    sent (the worker mints the token then); the raw token."""
    token = secrets.token_urlsafe(32)
    with tenant_session(inviter.tenant_id) as db:
        db.add(Invitation(tenant_id=inviter.tenant_id, email=email, role=role.value,
                          invited_by_user_id=inviter.user_id,
                          token_hash=secrets_gen.digest(token),
                          expires_at=datetime.now(UTC) + expires_in))
    return token


@dataclass
class Passkey:
    id: uuid.UUID
    authenticator: Authenticator  # holds its private key: it signs the member's assertions


def make_passkey(member: Member, authenticator: Authenticator | None = None,
                 name: str = "test passkey") -> Passkey:
    """A registered passkey of ``member``, as registration stores one (its COSE public key,
    the authenticator's counter, transports and backup flags); the member now has a passkey
    as a second factor."""
    authenticator = authenticator or Authenticator()
    authenticator.user_handle = member.user_id.bytes
    passkey_id = uuid.uuid4()
    with tenant_session(member.tenant_id) as db:
        db.add(PasskeyCredential(
            id=passkey_id, tenant_id=member.tenant_id, user_id=member.user_id,
            credential_id=authenticator.credential_id,
            public_key=authenticator.cose_public_key(),
            sign_count=authenticator.counter if authenticator.counts else 0,
            transports=list(authenticator.transports),
            backup_eligible=authenticator.backup_eligible, backed_up=authenticator.backed_up,
            name=name))
        user = db.get(User, member.user_id)
        assert user is not None
        user.passkey_enabled_at = user.passkey_enabled_at or datetime.now(UTC)
    return Passkey(passkey_id, authenticator)
