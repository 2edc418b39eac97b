"""What other domains may ask of accounts (their only way in)."""

from __future__ import annotations

import uuid

from sqlalchemy import Subquery, select
from sqlalchemy.orm import Session

from portcullis.accounts import passwords
from portcullis.accounts.models import Membership, MemberStatus
from portcullis.callers import Role


def membership_id(db: Session, tenant_id: uuid.UUID, user_id: uuid.UUID) -> uuid.UUID | None:
    """The membership of ``user_id`` in ``tenant_id``, in the caller's transaction."""
    return db.scalar(select(Membership.id).where(Membership.user_id == user_id,
                                                 Membership.tenant_id == tenant_id))


def joinable_memberships() -> Subquery:
    """Memberships' ``id``, ``tenant_id`` and ``user_id`` as a subquery another domain may
    join in a single statement (storage lists the buckets granted to a caller's membership
    in one round trip), as ``tenants.service.joinable``."""
    return select(Membership.id, Membership.tenant_id, Membership.user_id).subquery("membership")


def member_role(db: Session, tenant_id: uuid.UUID, member_id: uuid.UUID) -> Role | None:
    """The role of a member (a membership id) who has not been removed, else None."""
    role = db.scalar(select(Membership.role).where(
        Membership.id == member_id, Membership.tenant_id == tenant_id,
        Membership.status != MemberStatus.removed))
    return Role(role) if role is not None else None


def hash_secret(secret: str) -> str:
    """The slow hash accounts keep passwords under (bcrypt, ``BCRYPT_ROUNDS``), for a secret
    another domain keeps: a share link's password."""
    return passwords.hash_password(secret)


def verify_secret(secret: str, hashed: str) -> bool:
    """``hash_secret``'s check (constant cost for a given hash)."""
    return passwords.verify_password(secret, hashed)
