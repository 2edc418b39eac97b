"""Create, list, revoke and authenticate access keys; create and authenticate operator keys.

A key acts with its creator's current role and never beyond its scopes; it dies with its
creator's suspension or removal. The full key is returned once and stored only as a digest.
Finding a key by its digest crosses tenants (the tenant is not known yet): it reads ids only,
under the system role, and everything after runs in the key's tenant's scope.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Subquery, bindparam, select, text, update
from sqlalchemy.orm import Session

from portcullis import secrets_gen
from portcullis.access_keys.models import AccessKey, OperatorKey
from portcullis.alerts.service import identity_used
from portcullis.audit.service import Target, record, record_all
from portcullis.callers import Caller, Kind, Origin
from portcullis.db import system_session, tenant_session
from portcullis.db.roles import TENANT_SETTING
from portcullis.db.session import Prepared, prepared
from portcullis.errors import NotFound
from portcullis.pagination import Page, PageRequest, keyset

SCOPES = ("buckets:read", "buckets:write", "files:read", "files:write", "files:delete",
          "sftp:write", "billing:read", "audit:read", "jobs:read")
ACCESS_PREFIX = "pck_"
OPERATOR_PREFIX = "pco_"


@dataclass(frozen=True)
class NewKey:
    key: AccessKey
    secret: str


def _display_prefix(secret: str) -> str:
    return secret[:12]


# --------------------------------------------------------------------------- a tenant's keys

def create(caller: Caller, name: str, scopes: list[str], expires_in_days: int) -> NewKey:
    """A new key of ``caller`` (a member, who becomes its creator)."""
    assert caller.tenant_id is not None and caller.user_id is not None
    secret = secrets_gen.new_token(ACCESS_PREFIX)
    with tenant_session(caller.tenant_id) as db:
        key = AccessKey(tenant_id=caller.tenant_id, created_by_user_id=caller.user_id,
                        name=name, prefix=_display_prefix(secret),
                        key_hash=secrets_gen.digest(secret), scopes=sorted(set(scopes)),
                        expires_at=datetime.now(UTC) + timedelta(days=expires_in_days))
        db.add(key)
        db.flush()
        record(db, caller, "access_key.created", Target("access_key", str(key.id)),
               {"name": name, "scopes": key.scopes, "prefix": key.prefix})
        return NewKey(key, secret)


def list_keys(caller: Caller, page: PageRequest) -> Page[AccessKey]:
    """The tenant's keys, newest first."""
    assert caller.tenant_id is not None
    with tenant_session(caller.tenant_id) as db:
        return keyset(db, select(AccessKey).where(AccessKey.tenant_id == caller.tenant_id),
                      [AccessKey.created_at, AccessKey.id], [datetime, uuid.UUID], page)


def revoke(caller: Caller, key_id: uuid.UUID) -> None:
    """Revoke one of the tenant's keys; it stops working at once."""
    assert caller.tenant_id is not None
    with tenant_session(caller.tenant_id) as db:
        key = db.scalars(select(AccessKey).where(AccessKey.id == key_id,
                                                 AccessKey.tenant_id == caller.tenant_id)).first()
        if key is None:
            raise NotFound("access key")
        if key.revoked_at is None:
            key.revoked_at = datetime.now(UTC)
            record(db, caller, "access_key.revoked", Target("access_key", str(key.id)),
                   {"prefix": key.prefix})


def revoke_all(caller: Caller) -> int:
    """Revoke every live key of the caller's tenant at once (incident response), each
    audited; returns how many."""
    assert caller.tenant_id is not None
    with tenant_session(caller.tenant_id) as db:
        keys = list(db.scalars(select(AccessKey).where(
            AccessKey.tenant_id == caller.tenant_id, AccessKey.revoked_at.is_(None))
            .with_for_update()))
        now = datetime.now(UTC)
        for key in keys:
            key.revoked_at = now
        record_all(db, [(caller, "access_key.revoked", Target("access_key", str(key.id)),
                         {"prefix": key.prefix}) for key in keys])
        return len(keys)


def revoke_keys_of(db: Session, user_id: uuid.UUID) -> int:
    """Revoke every live key ``user_id`` created, in the caller's transaction (the member's
    suspension or removal); returns how many."""
    result = db.execute(update(AccessKey).where(AccessKey.created_by_user_id == user_id,
                                                AccessKey.revoked_at.is_(None))
                        .values(revoked_at=datetime.now(UTC)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- authentication

@dataclass(frozen=True)
class KeyUse:
    tenant_id: uuid.UUID
    key_id: uuid.UUID
    creator_id: uuid.UUID
    scopes: frozenset[str]


@dataclass(frozen=True)
class _Found:
    tenant_id: uuid.UUID
    id: uuid.UUID


def _find(key_hash: bytes) -> _Found | None:
    with system_session() as db:
        row = db.execute(select(AccessKey.tenant_id, AccessKey.id)
                         .where(AccessKey.key_hash == key_hash)).first()
    return _Found(row.tenant_id, row.id) if row else None


def authenticate(secret: str, origin: Origin) -> KeyUse | None:
    """The live key behind ``secret``, its use (time, address, the new-IP rule) recorded;
    None for anything else."""
    if not secret.startswith(ACCESS_PREFIX):
        return None
    found = _find(secrets_gen.digest(secret))
    if found is None:
        return None
    now = datetime.now(UTC)
    with tenant_session(found.tenant_id) as db:
        key = db.get(AccessKey, found.id)
        if key is None or key.revoked_at is not None or key.expires_at <= now:
            return None
        scopes = frozenset(key.scopes)
        actor = Caller(Kind.access_key, found.tenant_id, key.created_by_user_id,
                       credential_id=key.id, scopes=scopes, origin=origin)
        if identity_used(db, found.tenant_id, f"access_key:{key.id}", origin.ip, actor,
                         "Access key use"):
            record(db, actor, "access_key.used_from_new_ip", Target("access_key", str(key.id)),
                   {"previous_ip": key.last_used_ip, "prefix": key.prefix})
        db.execute(update(AccessKey).where(AccessKey.id == key.id)
                   .values(last_used_at=now, last_used_ip=origin.ip))
        return KeyUse(found.tenant_id, key.id, key.created_by_user_id, scopes)


# The per-request identity check reads a key with its creator's membership and its tenant
# in one statement and one round trip (``portcullis.accounts.identity``): these two are the
# key's half of it. ``KEY_TENANT`` runs as the system role and scopes the transaction to the
# tenant of the key whose digest is ``:key_hash`` (or to none); ``live_key()`` is that key,
# read under the app role in that scope, as a subquery to join on.
KEY_TENANT: Prepared = prepared("portcullis_key_tenant", text(
    f"SELECT set_config('{TENANT_SETTING}', coalesce((SELECT tenant_id::text FROM "  # noqa: S608
    f"{AccessKey.__tablename__} WHERE key_hash = :key_hash), ''), true)"))


def live_key() -> Subquery:
    """The key whose digest is the ``:key_hash`` parameter: ``id, tenant_id,
    created_by_user_id, scopes, revoked_at, expires_at, last_used_at, last_used_ip``."""
    return (select(AccessKey.id, AccessKey.tenant_id, AccessKey.created_by_user_id,
                   AccessKey.scopes, AccessKey.revoked_at, AccessKey.expires_at,
                   AccessKey.last_used_at, AccessKey.last_used_ip)
            .where(AccessKey.key_hash == bindparam("key_hash")).subquery("key"))


# --------------------------------------------------------------------------- operator keys

def create_operator_key(name: str) -> str:
    """A new operator key (no tenant's); the key itself is returned once."""
    secret = secrets_gen.new_token(OPERATOR_PREFIX)
    with system_session() as db:
        key = OperatorKey(name=name, prefix=_display_prefix(secret),
                          key_hash=secrets_gen.digest(secret))
        db.add(key)
        db.flush()
        record(db, Caller.system(), "operator_key.created",
               Target("operator_key", str(key.id)), {"name": name, "prefix": key.prefix})
    return secret


def authenticate_operator(secret: str) -> uuid.UUID | None:
    """The id of the live operator key behind ``secret``, its use recorded."""
    if not secret.startswith(OPERATOR_PREFIX):
        return None
    with system_session() as db:
        key_id = db.scalar(select(OperatorKey.id).where(
            OperatorKey.key_hash == secrets_gen.digest(secret),
            OperatorKey.revoked_at.is_(None)))
        if key_id is not None:
            db.execute(update(OperatorKey).where(OperatorKey.id == key_id)
                       .values(last_used_at=datetime.now(UTC)))
    return key_id
