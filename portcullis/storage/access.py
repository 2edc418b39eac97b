"""Who may do what with a bucket or an upload (API.md's table).

Admins and managers hold every right on every bucket of their tenant; staff and viewonly
hold only what was granted (viewonly: read at most). Every object route checks in one
order: visibility first (an object the caller may not read does not exist for them: 404),
then role and permission (403 ``forbidden``), so a 403 never confirms a hidden object.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from portcullis.accounts import service as accounts
from portcullis.callers import Caller, Role
from portcullis.errors import Forbidden, NotFound
from portcullis.storage.models import Bucket, BucketPermission, Upload

FULL_ACCESS = (Role.admin, Role.manager)


@dataclass(frozen=True)
class Rights:
    read: bool
    write: bool
    delete: bool


ALL = Rights(True, True, True)
NONE = Rights(False, False, False)


def tenant_of(caller: Caller) -> uuid.UUID:
    """The caller's tenant; a caller outside every tenant (an operator) holds nothing here."""
    if caller.tenant_id is None:
        raise NotFound()
    return caller.tenant_id


def membership_id(db: Session, caller: Caller) -> uuid.UUID | None:
    if caller.tenant_id is None or caller.user_id is None:
        return None  # not a member: nothing was granted to them
    return accounts.membership_id(db, caller.tenant_id, caller.user_id)


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


def require_role(caller: Caller, roles: tuple[Role, ...] | None) -> None:
    """403 unless the caller's role is among ``roles`` (None: any role)."""
    if roles is not None and caller.role not in roles:
        raise Forbidden("forbidden", "Your role does not allow this.")


def bucket_for(db: Session, caller: Caller, bucket_id: uuid.UUID, need: str = "read",
               lock: bool = False, roles: tuple[Role, ...] | None = None) -> Bucket:
    """The bucket if the caller may read it (else 404), then their role must be in
    ``roles`` and they must hold ``need`` (else 403)."""
    stmt = select(Bucket).where(Bucket.id == bucket_id, Bucket.tenant_id == caller.tenant_id)
    bucket = db.scalars(stmt.with_for_update() if lock else stmt).first()
    if bucket is None:
        raise NotFound("bucket")
    granted = rights(db, caller, bucket.id)
    if not granted.read:
        raise NotFound("bucket")
    require_role(caller, roles)
    if not getattr(granted, need):
        raise Forbidden("forbidden", f"You lack {need} permission on this bucket.")
    return bucket


def upload_for(db: Session, caller: Caller, upload_id: uuid.UUID) -> Upload:
    """An upload is readable by its uploader and admins only; to anyone else it is a 404."""
    upload = db.scalars(select(Upload).where(Upload.id == upload_id,
                                             Upload.tenant_id == caller.tenant_id)).first()
    if upload is None or not (caller.role is Role.admin
                              or upload.uploader_user_id == caller.user_id):
        raise NotFound("upload")
    return upload


def can_read_bucket(db: Session, caller: Caller, bucket_id: uuid.UUID) -> bool:
    """The bucket exists in the caller's tenant and they may read it."""
    exists = db.scalar(select(Bucket.id).where(Bucket.id == bucket_id,
                                               Bucket.tenant_id == caller.tenant_id))
    return exists is not None and rights(db, caller, bucket_id).read
