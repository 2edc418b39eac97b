"""Who is calling: resolved once per request from a verified credential, never from input.

The result is a ``Principal``: the ``Caller`` that every service takes, plus what the access
guard checks about the credential itself (the session's id and MFA state, the tenant's
status) and what ``/auth/me`` shows, all read by the same single statement.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import and_, bindparam, exists, func, select, update

from portcullis import secrets_gen
from portcullis.access_keys import service as access_keys
from portcullis.accounts.identity_cache import EpochSource, principals
from portcullis.accounts.models import (
    Membership,
    MemberStatus,
    SessionState,
    User,
    UserSession,
)
from portcullis.accounts.tokens import ABSOLUTE_LIFETIME, IDLE_TIMEOUT, SessionClaims
from portcullis.alerts.service import session_ip_changed
from portcullis.callers import Caller, Kind, Origin, Role
from portcullis.db import tenant_session
from portcullis.db.session import one_round_trip, owner_steps, prepared, tenant_steps
from portcullis.tenants.service import TenantStatus, joinable

TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class Principal:
    """The request's authenticated principal, as flask-login holds it: ``caller`` acts;
    the rest is the credential's state, for the access guard and ``/auth/me``."""

    caller: Caller
    session_id: uuid.UUID | None = None  # a browser session's; None for a key or an operator
    session_state: SessionState = SessionState.full
    tenant_status: str = TenantStatus.active.value
    mfa_enabled: bool = False
    email: str = ""
    name: str = ""
    tenant_name: str = ""

    # flask-login's user protocol
    is_authenticated: ClassVar[bool] = True
    is_active: ClassVar[bool] = True
    is_anonymous: ClassVar[bool] = False

    def get_id(self) -> str:
        if self.caller.kind is Kind.operator:
            return f"operator:{self.caller.credential_id}"
        return str(self.caller.user_id)

    @property
    def rate_key(self) -> str:
        """Whose budget the default rate limit counts against."""
        kind, caller = self.caller.kind, self.caller
        if kind is Kind.operator:
            return f"operator:{caller.credential_id}"
        if kind is Kind.access_key:
            return f"key:{caller.credential_id}"
        return f"user:{caller.user_id}"


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


def _mfa_enabled(row: Any) -> bool:
    """A second factor is enrolled (``User.mfa_enabled``, from a row of the statements below)."""
    return row.totp_enabled_at is not None or row.passkey_enabled_at is not None


# Compiled once to the driver's SQL. The check is one statement, sent with its tenant scope
# in one round trip (``tenant_steps``): the live-session row and, in the same statement, the
# idle clock's refresh, which writes only when the session is alive by every rule below and
# was last refreshed a minute or more ago (the clock needs minutes, not milliseconds, so a
# busy session's row is not rewritten on every request). The SELECT sees the row as it was
# before that refresh (one snapshot for the whole statement).
_tenant = joinable()
_live = (
    select(UserSession.id, UserSession.state, UserSession.created_at,
           UserSession.last_seen_at, UserSession.expires_at, UserSession.revoked_at,
           UserSession.ip, Membership.role, Membership.status.label("member_status"),
           _tenant.c.status.label("tenant_status"), User.totp_enabled_at,
           User.passkey_enabled_at, User.email, User.name, _tenant.c.name.label("tenant_name"))
    .join(User, User.id == UserSession.user_id)
    .join(Membership, Membership.user_id == User.id)
    .join(_tenant, _tenant.c.id == UserSession.tenant_id)
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


def _for_origin(principal: Principal, origin: Origin) -> Principal:
    """A remembered principal, acting from this request's address and user agent."""
    if principal.caller.origin == origin:  # the same client again: nothing to change
        return principal
    return replace(principal, caller=replace(principal.caller, origin=origin))


@dataclass(frozen=True)
class _RememberedSession:
    principal: Principal
    user_id: uuid.UUID
    ip: str | None  # the session's address: any other takes the database path (the alert)


def identity_from_session(claims: SessionClaims, origin: Origin,
                          epochs: EpochSource | None = None) -> Principal | None:
    """The principal behind a live session row, refreshing its idle clock; None if it died.

    Served from ``identity_cache`` while the tenant's epochs (read first, so that they are
    older than the row) are still those it was read under.
    """
    stamp = epochs(claims.tenant_id) if epochs is not None else None
    key = ("session", claims.session_id)
    hit = principals.valid(key, stamp)
    if hit is not None and hit.tenant_id == claims.tenant_id:
        remembered: _RememberedSession = hit.value
        if remembered.user_id == claims.user_id and not (
                remembered.ip and origin.ip and origin.ip != remembered.ip):
            return _for_origin(remembered.principal, origin)
    now = datetime.now(UTC)
    rows = one_round_trip(tenant_steps(claims.tenant_id, _LIVE_SESSION, {
        "session_id": claims.session_id, "user_id": claims.user_id,
        "tenant_id": claims.tenant_id, "now": now, "touch_before": now - TOUCH_EVERY,
        "idle_before": now - IDLE_TIMEOUT, "absolute_before": now - ABSOLUTE_LIFETIME,
        "active": MemberStatus.active.value}))
    row = rows[0] if rows else None
    if row is None:
        principals.forget(key)
        return None
    if (row.revoked_at is not None or row.member_status != MemberStatus.active
            or now >= row.expires_at or now - row.last_seen_at >= IDLE_TIMEOUT
            or now - row.created_at >= ABSOLUTE_LIFETIME):
        principals.forget(key)
        return None
    role = Role(row.role)
    mfa_enabled = _mfa_enabled(row)
    state = _effective_state(SessionState(row.state), role, mfa_enabled)
    caller = Caller.user(claims.tenant_id, claims.user_id, role, origin)
    principal = Principal(caller, row.id, state, row.tenant_status, mfa_enabled, row.email,
                          row.name, row.tenant_name)
    if row.ip and origin.ip and origin.ip != row.ip:
        with tenant_session(claims.tenant_id) as db:
            session_ip_changed(db, claims.tenant_id, row.id, claims.user_id, row.ip,
                               origin.ip)
        return principal
    # Served from memory until the idle clock needs its refresh (a minute after the last
    # one: this statement's, if it made one), or either expiry comes.
    seen = now if row.touched else row.last_seen_at
    until = min(row.expires_at, row.created_at + ABSOLUTE_LIFETIME, seen + TOUCH_EVERY)
    principals.put(key, claims.tenant_id, stamp, until.timestamp(),
                   _RememberedSession(principal, claims.user_id, row.ip))
    return principal


# An access key, its creator's membership and the tenant, found by the key's digest: the
# system role names the key's tenant (``access_keys.KEY_TENANT``), the app role reads it in
# that tenant's scope, in one round trip (``owner_steps``). Outer joins: a key whose creator
# is gone is still found, so that its use is recorded exactly as before (the slow path below
# decides).
_key = access_keys.live_key()
_LIVE_KEY = prepared("portcullis_live_key", (
    select(_key, Membership.role, Membership.status.label("member_status"),
           _tenant.c.status.label("tenant_status"), User.totp_enabled_at,
           User.passkey_enabled_at)
    .select_from(_key)
    .outerjoin(Membership, and_(Membership.user_id == _key.c.created_by_user_id,
                                Membership.tenant_id == _key.c.tenant_id))
    .outerjoin(User, User.id == _key.c.created_by_user_id)
    .outerjoin(_tenant, _tenant.c.id == _key.c.tenant_id)))


@dataclass(frozen=True)
class _RememberedKey:
    principal: Principal
    ip: str | None  # its last use's address: any other is recorded (the new-IP rule)


def identity_from_access_key(secret: str, origin: Origin,
                             epochs: EpochSource | None = None) -> Principal | None:
    """The principal a live key acts as; its use (time, address, the new-IP rule) recorded.

    The common case is one read: the same key used again from its last address within
    TOUCH_EVERY has nothing new to record (that address is in its seen-IP history, so the
    new-IP rule cannot fire), and is then served from ``identity_cache`` under its tenant's
    epochs (known from the key's last read). Anything else (first use, another address, a
    minute gone by) takes the full path, which records the use in its own transaction.
    """
    if not secret.startswith(access_keys.ACCESS_PREFIX):
        return None
    digest = secrets_gen.digest(secret)
    cache_key = ("key", digest)
    known = principals.get(cache_key)
    stamp = epochs(known.tenant_id) if known is not None and epochs is not None else None
    hit = principals.valid(cache_key, stamp)
    if hit is not None and hit.value is not None and hit.value.ip == origin.ip:
        return _for_origin(hit.value.principal, origin)
    now = datetime.now(UTC)
    rows = one_round_trip(owner_steps(access_keys.KEY_TENANT, _LIVE_KEY, {"key_hash": digest}))
    key = rows[0] if rows else None
    if key is None or key.revoked_at is not None or key.expires_at <= now:
        principals.forget(cache_key)
        return None
    if (key.last_used_at is None or key.last_used_ip != origin.ip
            or now - key.last_used_at >= TOUCH_EVERY or key.member_status is None):
        return _identity_from_access_key_recorded(secret, origin)
    if key.member_status != MemberStatus.active:
        principals.forget(cache_key)
        return None  # dies with its creator's suspension or removal
    caller = Caller.access_key(key.tenant_id, key.id, key.created_by_user_id, Role(key.role),
                               frozenset(key.scopes), origin)
    principal = Principal(caller, tenant_status=key.tenant_status,
                          mfa_enabled=_mfa_enabled(key))
    if known is None or known.tenant_id != key.tenant_id:
        stamp = None  # no stamp read before this row: remember only the tenant
    until = min(key.expires_at, key.last_used_at + TOUCH_EVERY)
    principals.put(cache_key, key.tenant_id, stamp, until.timestamp(),
                   _RememberedKey(principal, key.last_used_ip) if stamp else None)
    return principal


_CREATOR = (
    select(Membership.role, Membership.status, _tenant.c.status.label("tenant_status"),
           User.totp_enabled_at, User.passkey_enabled_at)
    .join(User, User.id == Membership.user_id)
    .join(_tenant, _tenant.c.id == Membership.tenant_id))


def _identity_from_access_key_recorded(secret: str, origin: Origin) -> Principal | None:
    use = access_keys.authenticate(secret, origin)
    if use is None:
        return None
    with tenant_session(use.tenant_id) as db:
        row = db.execute(_CREATOR.where(Membership.user_id == use.creator_id,
                                        Membership.tenant_id == use.tenant_id)).first()
    if row is None or row.status != MemberStatus.active:
        return None  # dies with its creator's suspension or removal
    caller = Caller.access_key(use.tenant_id, use.key_id, use.creator_id, Role(row.role),
                               use.scopes, origin)
    return Principal(caller, tenant_status=row.tenant_status,
                     mfa_enabled=_mfa_enabled(row))


def identity_from_operator_key(secret: str, origin: Origin) -> Principal | None:
    key_id = access_keys.authenticate_operator(secret)
    return Principal(Caller.operator(key_id, origin)) if key_id else None
