"""Users and memberships. A user belongs to exactly one tenant, through one membership."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from portcullis.callers import Role as Role  # the column type, re-exported
from portcullis.db.base import Base, created_at, uuid_pk


class MemberStatus(StrEnum):
    active = "active"
    suspended = "suspended"
    removed = "removed"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        # A removed member's address may be invited again.
        Index("uq_users_email_lower", text("lower(email)"), unique=True,
              postgresql_where=text("deleted_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(100))
    email_verified_at: Mapped[datetime | None]
    password_changed_at: Mapped[datetime | None]
    # TOTP secrets are encrypted at rest (portcullis.secretbox).
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_pending_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_enabled_at: Mapped[datetime | None]
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # Set while the user holds a passkey (portcullis.accounts.passkeys): on this row, so the
    # identity check reads it with TOTP's and a change bumps the identity epochs.
    passkey_enabled_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = created_at()

    @property
    def mfa_enabled(self) -> bool:
        """A second factor is enrolled: TOTP or a passkey, equal either way."""
        return self.totp_enabled_at is not None or self.passkey_enabled_at is not None


class Membership(Base):
    __tablename__ = "memberships"

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=MemberStatus.active)
    created_at: Mapped[datetime] = created_at()


class SessionState(StrEnum):
    full = "full"
    mfa_pending = "mfa_pending"
    mfa_enrollment = "mfa_enrollment"


class UserSession(Base):
    """The server-side record behind a session cookie: revoking it ends the cookie at once."""

    __tablename__ = "user_sessions"

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=SessionState.full)
    created_at: Mapped[datetime] = created_at()
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    mfa_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class TokenPurpose(StrEnum):
    verify_email = "verify_email"
    reset_password = "reset_password"  # noqa: S105 - a purpose name, not a secret


class EmailToken(Base):
    """A single-use token sent by email; only its SHA-256 is stored."""

    __tablename__ = "email_tokens"

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = created_at()


class Invitation(Base):
    __tablename__ = "invitations"

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16))
    invited_by_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    # Minted by the worker that sends the email, so the raw token never rests anywhere.
    token_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = created_at()


class RecoveryCode(Base):
    __tablename__ = "recovery_codes"

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = created_at()


class PasskeyCredential(Base):
    """A passkey (WebAuthn credential) of a user: a second factor equal to TOTP. The public
    key (COSE) verifies its assertions and is no secret; ``sign_count`` is the authenticator's
    last counter, which must grow (0 for an authenticator that does not count)."""

    __tablename__ = "webauthn_credentials"

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1023), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger)
    transports: Mapped[list[str]] = mapped_column(ARRAY(String(16)))
    backup_eligible: Mapped[bool]
    backed_up: Mapped[bool]
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = created_at()
    last_used_at: Mapped[datetime | None]


class ChallengePurpose(StrEnum):
    registration = "registration"
    authentication = "authentication"


class PasskeyChallenge(Base):
    """The one live WebAuthn challenge of a session per purpose: replaced by the next
    options call, consumed (deleted) by the ceremony that answers it, whatever its outcome."""

    __tablename__ = "webauthn_challenges"
    __table_args__ = (UniqueConstraint("session_id", "purpose",
                                       name="uq_webauthn_challenges_session_purpose"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_sessions.id"))
    purpose: Mapped[str] = mapped_column(String(16))
    challenge: Mapped[bytes] = mapped_column(LargeBinary(64))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = created_at()
