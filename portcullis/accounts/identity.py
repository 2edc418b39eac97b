"""Who is calling: resolved once per request from a verified credential, never from input."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update

from portcullis.accounts.models import (
    Membership,
    MemberStatus,
    Role,
    SessionState,
    User,
    UserSession,
)
from portcullis.accounts.tokens import ABSOLUTE_LIFETIME, IDLE_TIMEOUT, SessionClaims
from portcullis.db import tenant_session
from portcullis.tenants.models import Tenant


@dataclass(frozen=True)
class Identity:
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    role: Role
    session_id: uuid.UUID | None
    session_state: SessionState
    tenant_status: str
    via: str  # "session" or "access_key"

    # flask-login's user protocol
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.user_id)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin


def identity_from_session(claims: SessionClaims) -> Identity | None:
    """The identity behind a live session row, refreshing its idle clock; None if it died."""
    now = datetime.now(UTC)
    with tenant_session(claims.tenant_id) as db:
        row = db.execute(
            select(UserSession, Membership.role, Membership.status, Tenant.status)
            .join(User, User.id == UserSession.user_id)
            .join(Membership, Membership.user_id == User.id)
            .join(Tenant, Tenant.id == UserSession.tenant_id)
            .where(UserSession.id == claims.session_id,
                   UserSession.user_id == claims.user_id,
                   UserSession.tenant_id == claims.tenant_id,
                   Membership.tenant_id == claims.tenant_id)
        ).first()
        if row is None:
            return None
        record, role, member_status, tenant_status = row
        if (record.revoked_at is not None or member_status != MemberStatus.active
                or now >= record.expires_at or now - record.last_seen_at >= IDLE_TIMEOUT
                or now - record.created_at >= ABSOLUTE_LIFETIME):
            return None
        db.execute(update(UserSession).where(UserSession.id == record.id)
                   .values(last_seen_at=now))
        return Identity(claims.tenant_id, claims.user_id, Role(role), record.id,
                        SessionState(record.state), tenant_status, "session")
