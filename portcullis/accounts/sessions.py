"""Server-side sessions: created at login, revoked by logout, reset, suspension or removal."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from portcullis.accounts.models import SessionState, UserSession
from portcullis.accounts.tokens import ABSOLUTE_LIFETIME, SessionClaims, csrf_token, issue
from portcullis.audit.service import Origin


@dataclass(frozen=True)
class IssuedSession:
    id: uuid.UUID
    state: SessionState
    token: str
    csrf: str


def open_session(db: Session, tenant_id: uuid.UUID, user_id: uuid.UUID,
                 state: SessionState, origin: Origin) -> IssuedSession:
    now = datetime.now(UTC)
    record = UserSession(id=uuid.uuid4(), tenant_id=tenant_id, user_id=user_id,
                         state=state.value, last_seen_at=now, expires_at=now + ABSOLUTE_LIFETIME,
                         ip=origin.ip, user_agent=origin.user_agent)
    db.add(record)
    db.flush()
    token = issue(SessionClaims(user_id, tenant_id, record.id), record.expires_at)
    return IssuedSession(record.id, state, token, csrf_token(record.id))


def revoke(db: Session, session_id: uuid.UUID) -> None:
    db.execute(update(UserSession).where(UserSession.id == session_id,
                                         UserSession.revoked_at.is_(None))
               .values(revoked_at=datetime.now(UTC)))


def revoke_all(db: Session, user_id: uuid.UUID) -> int:
    result = db.execute(update(UserSession).where(UserSession.user_id == user_id,
                                                  UserSession.revoked_at.is_(None))
                        .values(revoked_at=datetime.now(UTC)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def set_state(db: Session, session_id: uuid.UUID, state: SessionState) -> None:
    db.execute(update(UserSession).where(UserSession.id == session_id)
               .values(state=state.value, mfa_failures=0))


def live_query(user_id: uuid.UUID) -> Select[tuple[UserSession]]:
    """The user's unrevoked, unexpired sessions, unordered (the caller pages them)."""
    return select(UserSession).where(UserSession.user_id == user_id,
                                     UserSession.revoked_at.is_(None),
                                     UserSession.expires_at > datetime.now(UTC))


def live_sessions(db: Session, user_id: uuid.UUID) -> list[UserSession]:
    return list(db.scalars(live_query(user_id).order_by(UserSession.created_at.desc())))
