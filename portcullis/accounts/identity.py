"""Who is calling: resolved once per request from a verified credential, never from input."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, bindparam, exists, func, select, text, update

from portcullis import secrets_gen
from portcullis.access_keys import service as access_keys
from portcullis.access_keys.models import AccessKey
from portcullis.accounts.models import (
    Membership,
    MemberStatus,
    Role,
    SessionState,
    User,
    UserSession,
)
from portcullis.accounts.tokens import ABSOLUTE_LIFETIME, IDLE_TIMEOUT, SessionClaims
from portcullis.alerts import detection
from portcullis.audit.service import Origin
from portcullis.db import tenant_session
from portcullis.db.roles import TENANT_SETTING
from portcullis.db.session import (
    one_round_trip,
    owner_steps,
    prepared,
    tenant_steps,
)
from portcullis.tenants.models import Tenant

TOUCH_EVERY = timedelta(seconds=60)


class _Authenticated:
    """flask-login's user protocol."""

    is_authenticated = True
    is_active = True
    is_anonymous = False


@dataclass(frozen=True)
class Identity(_Authenticated):
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    role: Role
    session_id: uuid.UUID | None
    session_state: SessionState
    tenant_status: str
    via: str  # "session" or "access_key"
    mfa_enabled: bool = False
    access_key_id: uuid.UUID | None = None
    scopes: frozenset[str] | None = None  # None: a browser session, every scope of the role
    email: str = ""
    name: str = ""
    tenant_name: str = ""

    def get_id(self) -> str:
        return str(self.user_id)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin

    @property
    def rate_key(self) -> str:
        return f"key:{self.access_key_id}" if self.access_key_id else f"user:{self.user_id}"


@dataclass(frozen=True)
class OperatorIdentity(_Authenticated):
    operator_key_id: uuid.UUID
    via: str = "operator"

    def get_id(self) -> str:
        return f"operator:{self.operator_key_id}"

    @property
    def rate_key(self) -> str:
        return f"operator:{self.operator_key_id}"


def _effective_state(state: SessionState, role: Role, mfa_enabled: bool) -> SessionState:
    """The session's state given the user's MFA now, not when the session was opened.

    A promotion to a role that needs MFA restricts a full session until TOTP is enrolled;
    a session opened before TOTP was enrolled elsewhere must now give a code (otherwise it
    could enrol a second factor of its own and take the account over).
    """
    if state is SessionState.full and role is not Role.viewonly and not mfa_enabled:
        return SessionState.mfa_enrollment
    if state is SessionState.mfa_enrollment and mfa_enabled:
        return SessionState.mfa_pending
    return state


# Compiled once to the driver's SQL. The check is one statement, sent with its tenant scope
# in one round trip (``tenant_statement``): the live-session row and, in the same
# statement, the idle clock's refresh, which writes only when the session is alive by
# every rule below and was last refreshed a minute or more ago (the clock needs minutes,
# not milliseconds, so a busy session's row is not rewritten on every request). The SELECT
# sees the row as it was before that refresh (one snapshot for the whole statement).
_live = (
    select(UserSession.id, UserSession.state, UserSession.created_at,
           UserSession.last_seen_at, UserSession.expires_at, UserSession.revoked_at,
           UserSession.ip, Membership.role, Membership.status.label("member_status"),
           Tenant.status.label("tenant_status"), User.totp_enabled_at, User.email, User.name,
           Tenant.name.label("tenant_name"))
    .join(User, User.id == UserSession.user_id)
    .join(Membership, Membership.user_id == User.id)
    .join(Tenant, Tenant.id == UserSession.tenant_id)
    .where(UserSession.id == bindparam("session_id"),
           UserSession.user_id == bindparam("user_id"),
           UserSession.tenant_id == bindparam("tenant_id"),
           Membership.tenant_id == bindparam("tenant_id"))
).cte("live")
_touched = (
    update(UserSession)
    .where(UserSession.id == bindparam("session_id"),
           UserSession.tenant_id == bindparam("tenant_id"),
           UserSession.revoked_at.is_(None),
           UserSession.expires_at > bindparam("now"),
           UserSession.created_at > bindparam("absolute_before"),
           UserSession.last_seen_at > bindparam("idle_before"),
           UserSession.last_seen_at <= bindparam("touch_before"),
           exists().where(_live.c.member_status == bindparam("active")))
    .values(last_seen_at=bindparam("now"))
    .returning(UserSession.id)
).cte("touched")
_LIVE_SESSION = prepared("portcullis_live_session", select(
    _live, select(func.count()).select_from(_touched).scalar_subquery().label("touched")))


def identity_from_session(claims: SessionClaims, origin: Origin) -> Identity | None:
    """The identity behind a live session row, refreshing its idle clock; None if it died."""
    now = datetime.now(UTC)
    rows = one_round_trip(tenant_steps(claims.tenant_id, _LIVE_SESSION, {
        "session_id": claims.session_id, "user_id": claims.user_id,
        "tenant_id": claims.tenant_id, "now": now, "touch_before": now - TOUCH_EVERY,
        "idle_before": now - IDLE_TIMEOUT, "absolute_before": now - ABSOLUTE_LIFETIME,
        "active": MemberStatus.active.value}))
    row = rows[0] if rows else None
    if row is None:
        return None
    if (row.revoked_at is not None or row.member_status != MemberStatus.active
            or now >= row.expires_at or now - row.last_seen_at >= IDLE_TIMEOUT
            or now - row.created_at >= ABSOLUTE_LIFETIME):
        return None
    if row.ip and origin.ip and origin.ip != row.ip:
        with tenant_session(claims.tenant_id) as db:
            detection.session_ip_changed(db, claims.tenant_id, row.id, claims.user_id,
                                         row.ip, origin.ip)
    mfa_enabled = row.totp_enabled_at is not None
    state = _effective_state(SessionState(row.state), Role(row.role), mfa_enabled)
    return Identity(claims.tenant_id, claims.user_id, Role(row.role), row.id, state,
                    row.tenant_status, "session", mfa_enabled, email=row.email,
                    name=row.name, tenant_name=row.tenant_name)


# An access key, its creator's membership and the tenant, found by the key's digest: the
# system role names the key's tenant, the app role reads it in that tenant's scope, in one
# round trip (``owner_scoped_statement``). Outer joins: a key whose creator is gone is still
# found, so that its use is recorded exactly as before (the slow path below decides).
_KEY_TENANT = prepared("portcullis_key_tenant", text(
    f"SELECT set_config('{TENANT_SETTING}', coalesce((SELECT tenant_id::text FROM "  # noqa: S608
    f"{AccessKey.__tablename__} WHERE key_hash = :key_hash), ''), true)"))
_LIVE_KEY = prepared("portcullis_live_key", (
    select(AccessKey.id, AccessKey.tenant_id, AccessKey.created_by_user_id, AccessKey.scopes,
           AccessKey.revoked_at, AccessKey.expires_at, AccessKey.last_used_at,
           AccessKey.last_used_ip, Membership.role, Membership.status.label("member_status"),
           Tenant.status.label("tenant_status"), User.totp_enabled_at)
    .outerjoin(Membership, and_(Membership.user_id == AccessKey.created_by_user_id,
                                Membership.tenant_id == AccessKey.tenant_id))
    .outerjoin(User, User.id == AccessKey.created_by_user_id)
    .outerjoin(Tenant, Tenant.id == AccessKey.tenant_id)
    .where(AccessKey.key_hash == bindparam("key_hash"))))


def identity_from_access_key(secret: str, origin: Origin) -> Identity | None:
    """The identity a live key acts as; its use (time, address, the new-IP rule) recorded.

    The common case is one read: the same key used again from its last address within
    TOUCH_EVERY has nothing new to record (that address is in its seen-IP history, so the
    new-IP rule cannot fire). Anything else (first use, another address, a minute gone
    by) takes the full path, which records the use in its own transaction.
    """
    if not secret.startswith(access_keys.ACCESS_PREFIX):
        return None
    now = datetime.now(UTC)
    rows = one_round_trip(owner_steps(_KEY_TENANT, _LIVE_KEY,
                                      {"key_hash": secrets_gen.digest(secret)}))
    key = rows[0] if rows else None
    if key is None or key.revoked_at is not None or key.expires_at <= now:
        return None
    if (key.last_used_at is None or key.last_used_ip != origin.ip
            or now - key.last_used_at >= TOUCH_EVERY or key.member_status is None):
        return _identity_from_access_key_recorded(secret, origin)
    if key.member_status != MemberStatus.active:
        return None  # dies with its creator's suspension or removal
    return Identity(key.tenant_id, key.created_by_user_id, Role(key.role), None,
                    SessionState.full, key.tenant_status, "access_key",
                    key.totp_enabled_at is not None, key.id, frozenset(key.scopes))


def _identity_from_access_key_recorded(secret: str, origin: Origin) -> Identity | None:
    use = access_keys.authenticate(secret, origin)
    if use is None:
        return None
    with tenant_session(use.tenant_id) as db:
        row = db.execute(
            select(Membership.role, Membership.status, Tenant.status, User.totp_enabled_at)
            .join(User, User.id == Membership.user_id)
            .join(Tenant, Tenant.id == Membership.tenant_id)
            .where(Membership.user_id == use.creator_id,
                   Membership.tenant_id == use.tenant_id)).first()
    if row is None or row.status != MemberStatus.active:
        return None  # dies with its creator's suspension or removal
    role, _, tenant_status, totp_enabled_at = row
    return Identity(use.tenant_id, use.creator_id, Role(role), None, SessionState.full,
                    tenant_status, "access_key", totp_enabled_at is not None, use.key_id,
                    use.scopes)


def identity_from_operator_key(secret: str) -> OperatorIdentity | None:
    key_id = access_keys.authenticate_operator(secret)
    return OperatorIdentity(key_id) if key_id else None
