"""Server-side sessions: created at login, revoked by logout, reset, suspension or removal."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from portcullis.accounts.identity import Principal
from portcullis.accounts.models import Membership, SessionState, UserSession
from portcullis.accounts.tokens import ABSOLUTE_LIFETIME, SessionClaims, csrf_token, issue
from portcullis.audit.service import Target, record, record_all
from portcullis.callers import Caller
from portcullis.db import tenant_session
from portcullis.errors import NotFound
from portcullis.pagination import Page, PageRequest, keyset


@dataclass(frozen=True)
class IssuedSession:
    id: uuid.UUID
    state: SessionState
    token: str
    csrf: str


def open_session(db: Session, user: Caller, state: SessionState) -> IssuedSession:
    """A new session of ``user`` (who has just logged in), from their address."""
    assert user.tenant_id is not None and user.user_id is not None
    now = datetime.now(UTC)
    row = UserSession(id=uuid.uuid4(), tenant_id=user.tenant_id, user_id=user.user_id,
                      state=state.value, last_seen_at=now, expires_at=now + ABSOLUTE_LIFETIME,
                      ip=user.origin.ip, user_agent=user.origin.user_agent)
    db.add(row)
    db.flush()
    token = issue(SessionClaims(user.user_id, user.tenant_id, row.id), row.expires_at)
    return IssuedSession(row.id, state, token, csrf_token(row.id))


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


def _live(user_id: uuid.UUID) -> tuple[ColumnElement[bool], ...]:
    """The user's unrevoked, unexpired sessions."""
    return (UserSession.user_id == user_id, UserSession.revoked_at.is_(None),
            UserSession.expires_at > datetime.now(UTC))


@dataclass(frozen=True)
class SessionView:
    id: uuid.UUID
    created_at: datetime
    last_seen_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool  # the session asking


def _member_session(principal: Principal) -> tuple[uuid.UUID, uuid.UUID]:
    caller = principal.caller
    assert caller.tenant_id is not None and caller.user_id is not None, "a member's session"
    return caller.tenant_id, caller.user_id


def list_own(principal: Principal, page: PageRequest) -> Page[SessionView]:
    """The principal's user's live sessions, newest first, marking the one asking."""
    tenant_id, user_id = _member_session(principal)
    with tenant_session(tenant_id) as db:
        found = keyset(db, select(UserSession).where(*_live(user_id)),
                       [UserSession.created_at, UserSession.id], [datetime, uuid.UUID], page)
        return found.map(lambda s: SessionView(s.id, s.created_at, s.last_seen_at, s.ip,
                                               s.user_agent, s.id == principal.session_id))


def revoke_own(principal: Principal, session_id: uuid.UUID) -> None:
    """Revoke one of the user's own live sessions (anyone else's is not found)."""
    tenant_id, user_id = _member_session(principal)
    with tenant_session(tenant_id) as db:
        if db.scalar(select(UserSession.id).where(UserSession.id == session_id,
                                                  *_live(user_id))) is None:
            raise NotFound("session")
        revoke(db, session_id)
        record(db, principal.caller, "auth.session_revoked", Target("session", str(session_id)))


def revoke_sessions(caller: Caller, user_id: uuid.UUID | None) -> int:
    """Revoke the live sessions of one user of the caller's tenant, or of all its users
    (incident response): each answers 401 on its next request. Each is audited; an unknown
    user is NotFound. Returns how many."""
    assert caller.tenant_id is not None
    with tenant_session(caller.tenant_id) as db:
        if user_id is not None and db.scalar(select(Membership.id).where(
                Membership.tenant_id == caller.tenant_id,
                Membership.user_id == user_id)) is None:
            raise NotFound("user")
        where = [UserSession.tenant_id == caller.tenant_id, UserSession.revoked_at.is_(None),
                 UserSession.expires_at > datetime.now(UTC)]
        if user_id is not None:
            where.append(UserSession.user_id == user_id)
        revoked = list(db.execute(update(UserSession).where(*where)
                                  .values(revoked_at=datetime.now(UTC))
                                  .returning(UserSession.id, UserSession.user_id)))
        record_all(db, [(caller, "auth.session_revoked", Target("session", str(session_id)),
                         {"user_id": str(owner)}) for session_id, owner in revoked])
        return len(revoked)
