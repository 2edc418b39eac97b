"""Create, list, revoke and authenticate access keys; create operator keys.

A key acts with its creator's current role and never beyond its scopes; it dies with its
creator's suspension or removal. The full key is returned once and stored only as a digest.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, select, update

from portcullis import secrets_gen
from portcullis.access_keys.models import AccessKey, OperatorKey
from portcullis.accounts import lookup
from portcullis.accounts.audit import record, user_actor
from portcullis.alerts import detection
from portcullis.audit.service import Actor, Origin, Target
from portcullis.db import system_session, tenant_session
from portcullis.errors import NotFound

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


def create(tenant_id: uuid.UUID, creator_id: uuid.UUID, name: str, scopes: list[str],
           expires_in_days: int, origin: Origin) -> NewKey:
    secret = secrets_gen.new_token(ACCESS_PREFIX)
    with tenant_session(tenant_id) as db:
        key = AccessKey(tenant_id=tenant_id, created_by_user_id=creator_id, name=name,
                        prefix=_display_prefix(secret), key_hash=secrets_gen.digest(secret),
                        scopes=sorted(set(scopes)),
                        expires_at=datetime.now(UTC) + timedelta(days=expires_in_days))
        db.add(key)
        db.flush()
        record(db, tenant_id, "access_key.created", user_actor(creator_id), origin,
               Target("access_key", str(key.id)), {"name": name, "scopes": key.scopes,
                                                   "prefix": key.prefix})
        return NewKey(key, secret)


def keys_query(tenant_id: uuid.UUID) -> Select[tuple[AccessKey]]:
    return select(AccessKey).where(AccessKey.tenant_id == tenant_id)


def revoke(tenant_id: uuid.UUID, actor_id: uuid.UUID, key_id: uuid.UUID,
           origin: Origin) -> None:
    with tenant_session(tenant_id) as db:
        key = db.scalars(select(AccessKey).where(AccessKey.id == key_id,
                                                 AccessKey.tenant_id == tenant_id)).first()
        if key is None:
            raise NotFound("access key")
        if key.revoked_at is None:
            key.revoked_at = datetime.now(UTC)
            record(db, tenant_id, "access_key.revoked", user_actor(actor_id), origin,
                   Target("access_key", str(key.id)), {"prefix": key.prefix})


@dataclass(frozen=True)
class KeyUse:
    tenant_id: uuid.UUID
    key_id: uuid.UUID
    creator_id: uuid.UUID
    scopes: frozenset[str]


def authenticate(secret: str, origin: Origin) -> KeyUse | None:
    """The live key behind ``secret``, its use recorded; None for anything else."""
    if not secret.startswith(ACCESS_PREFIX):
        return None
    found = lookup.access_key(secrets_gen.digest(secret))
    if found is None:
        return None
    now = datetime.now(UTC)
    with tenant_session(found.tenant_id) as db:
        key = db.get(AccessKey, found.id)
        if key is None or key.revoked_at is not None or key.expires_at <= now:
            return None
        actor = Actor("access_key", str(key.id))
        if detection.identity_used(db, found.tenant_id, f"access_key:{key.id}", origin.ip,
                                   actor, "Access key use"):
            record(db, found.tenant_id, "access_key.used_from_new_ip", actor, origin,
                   Target("access_key", str(key.id)),
                   {"previous_ip": key.last_used_ip, "prefix": key.prefix})
        db.execute(update(AccessKey).where(AccessKey.id == key.id)
                   .values(last_used_at=now, last_used_ip=origin.ip))
        return KeyUse(found.tenant_id, key.id, key.created_by_user_id, frozenset(key.scopes))


def create_operator_key(name: str) -> str:
    secret = secrets_gen.new_token(OPERATOR_PREFIX)
    with system_session() as db:
        key = OperatorKey(name=name, prefix=_display_prefix(secret),
                          key_hash=secrets_gen.digest(secret))
        db.add(key)
        db.flush()
        record(db, None, "operator_key.created", Actor("system"), Origin(),
               Target("operator_key", str(key.id)), {"name": name, "prefix": key.prefix})
    return secret


def authenticate_operator(secret: str) -> uuid.UUID | None:
    if not secret.startswith(OPERATOR_PREFIX):
        return None
    key_id = lookup.operator_key(secrets_gen.digest(secret))
    if key_id is not None:
        with system_session() as db:
            db.execute(update(OperatorKey).where(OperatorKey.id == key_id)
                       .values(last_used_at=datetime.now(UTC)))
    return key_id
