"""Users and memberships. A user belongs to exactly one tenant, through one membership."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from portcullis.db.base import Base, created_at, uuid_pk


class Role(StrEnum):
    admin = "admin"
    manager = "manager"
    staff = "staff"
    viewonly = "viewonly"

    @property
    def rank(self) -> int:
        return {"admin": 4, "manager": 3, "staff": 2, "viewonly": 1}[self.value]


class MemberStatus(StrEnum):
    active = "active"
    suspended = "suspended"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (Index("uq_users_email_lower", text("lower(email)"), unique=True),)

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(100))
    email_verified_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = created_at()


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
