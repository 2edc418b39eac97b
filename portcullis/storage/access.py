"""Who may do what with a bucket (API.md's table).

Admins and managers hold every right on every bucket of their tenant; staff and viewonly
hold only what was granted (viewonly: read at most). A bucket the caller may not read does
not exist for them (404).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from portcullis.accounts.caller import Caller
from portcullis.accounts.models import Membership, Role
from portcullis.errors import Forbidden, NotFound
from portcullis.storage.models import Bucket, BucketPermission

FULL_ACCESS = (Role.admin, Role.manager)


@dataclass(frozen=True)
class Rights:
    read: bool
    write: bool
    delete: bool


ALL = Rights(True, True, True)
NONE = Rights(False, False, False)


def membership_id(db: Session, caller: Caller) -> uuid.UUID | None:
    return db.scalar(select(Membership.id).where(Membership.user_id == caller.user_id,
                                                 Membership.tenant_id == caller.tenant_id))


def rights(db: Session, caller: Caller, bucket_id: uuid.UUID) -> Rights:
    if caller.role in FULL_ACCESS:
        return ALL
    grant = db.scalars(select(BucketPermission).where(
        BucketPermission.bucket_id == bucket_id,
        BucketPermission.membership_id == membership_id(db, caller))).first()
    if grant is None:
        return NONE
    viewonly = caller.role is Role.viewonly
    return Rights(grant.can_read, grant.can_write and not viewonly,
                  grant.can_delete and not viewonly)


def readable_bucket_ids(db: Session, caller: Caller) -> list[uuid.UUID] | None:
    """None means every bucket of the tenant."""
    if caller.role in FULL_ACCESS:
        return None
    return list(db.scalars(select(BucketPermission.bucket_id).where(
        BucketPermission.membership_id == membership_id(db, caller),
        BucketPermission.can_read.is_(True))))


def bucket_for(db: Session, caller: Caller, bucket_id: uuid.UUID, need: str = "read",
               lock: bool = False) -> Bucket:
    """The bucket if the caller may read it (else 404) and has ``need`` (else 403)."""
    stmt = select(Bucket).where(Bucket.id == bucket_id, Bucket.tenant_id == caller.tenant_id)
    bucket = db.scalars(stmt.with_for_update() if lock else stmt).first()
    if bucket is None:
        raise NotFound("bucket")
    granted = rights(db, caller, bucket.id)
    if not granted.read:
        raise NotFound("bucket")
    if not getattr(granted, need):
        raise Forbidden("forbidden", f"You lack {need} permission on this bucket.")
    return bucket
