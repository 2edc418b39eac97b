"""Buckets: create, list what the caller may read, delete when empty, grant, lifecycle.

Each function runs in the caller's transaction (``db``); ``storage.service`` opens it. Object
routes check visibility first (404), then the role (403), then the permission (403).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy import delete as delete_rows
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portcullis.accounts import service as accounts
from portcullis.audit.service import Target, record
from portcullis.callers import Caller, Role
from portcullis.errors import Conflict, Invalid, NotFound
from portcullis.storage import access
from portcullis.storage.models import Bucket, BucketPermission, File, Upload, UploadStatus

ADMIN = (Role.admin,)
ADMIN_MANAGER = (Role.admin, Role.manager)


@dataclass(frozen=True)
class BucketView:
    id: uuid.UUID
    name: str
    created_at: datetime
    bytes: int
    objects: int


def create(db: Session, caller: Caller, name: str) -> Bucket:
    bucket = Bucket(tenant_id=caller.tenant_id, name=name)  # roles: the route's guard
    try:
        with db.begin_nested():
            db.add(bucket)
            db.flush()
    except IntegrityError:
        raise Conflict("bucket_exists", "A bucket with this name exists.") from None
    record(db, caller, "bucket.created", Target("bucket", str(bucket.id)), {"name": name})
    return bucket


def readable_query(db: Session, caller: Caller) -> Select[Bucket]:
    stmt = select(Bucket).where(Bucket.tenant_id == caller.tenant_id)
    ids = access.readable_bucket_ids(db, caller)
    return stmt if ids is None else stmt.where(Bucket.id.in_(ids))


def views_of(db: Session, buckets: list[Bucket]) -> list[BucketView]:
    totals = dict((row.bucket_id, (row.bytes, row.objects)) for row in db.execute(
        select(File.bucket_id, func.coalesce(func.sum(File.size), 0).label("bytes"),
               func.count().label("objects"))
        .where(File.bucket_id.in_([b.id for b in buckets])).group_by(File.bucket_id)))
    return [BucketView(b.id, b.name, b.created_at, int(totals.get(b.id, (0, 0))[0]),
                       int(totals.get(b.id, (0, 0))[1])) for b in buckets]


def delete(db: Session, caller: Caller, bucket_id: uuid.UUID) -> None:
    """Admins, with delete permission; 409 while it holds files or uploads being scanned."""
    bucket = access.bucket_for(db, caller, bucket_id, "delete", lock=True, roles=ADMIN)
    busy = db.scalar(select(func.count()).select_from(File).where(File.bucket_id == bucket.id))
    busy = busy or db.scalar(select(func.count()).select_from(Upload).where(
        Upload.bucket_id == bucket.id,
        Upload.status.in_([UploadStatus.pending, UploadStatus.scanning])))
    if busy:
        raise Conflict("bucket_not_empty", "Delete the bucket's files first.")
    plain = {"synchronize_session": False}  # nothing of these is loaded in the session
    db.execute(delete_rows(BucketPermission).where(BucketPermission.bucket_id == bucket.id),
               execution_options=plain)
    db.execute(delete_rows(Upload).where(Upload.bucket_id == bucket.id),  # all terminal
               execution_options=plain)
    record(db, caller, "bucket.deleted", Target("bucket", str(bucket.id)), {"name": bucket.name})
    db.delete(bucket)


def set_permissions(db: Session, caller: Caller, bucket_id: uuid.UUID,
                    member_id: uuid.UUID, read: bool, write: bool, delete: bool) -> Rights:
    """Admins and managers; a view-only member can be granted read only."""
    bucket = access.bucket_for(db, caller, bucket_id, "read", roles=ADMIN_MANAGER)
    role = accounts.member_role(db, bucket.tenant_id, member_id)
    if role is None:
        raise NotFound("member")
    if role is Role.viewonly and (write or delete):
        raise Invalid("viewonly_read_only", "View-only members can be granted read only.")
    if (write or delete) and not read:
        raise Invalid("validation_error", "Write and delete need read.")
    values = {"can_read": read, "can_write": write, "can_delete": delete}
    db.execute(insert(BucketPermission).values(
        tenant_id=bucket.tenant_id, bucket_id=bucket.id, membership_id=member_id, **values)
        .on_conflict_do_update(constraint="uq_bucket_permissions_member", set_=values))
    record(db, caller, "bucket.permissions_changed", Target("bucket", str(bucket.id)),
           {"member_id": str(member_id), **values})
    return Rights(read, write, delete)


def set_lifecycle(db: Session, caller: Caller, bucket_id: uuid.UUID,
                  expire_after_days: int | None) -> Bucket:
    """Admins and managers."""
    bucket = access.bucket_for(db, caller, bucket_id, "read", lock=True, roles=ADMIN_MANAGER)
    bucket.expire_after_days = expire_after_days
    record(db, caller, "bucket.lifecycle_changed", Target("bucket", str(bucket.id)),
           {"expire_after_days": expire_after_days})
    return bucket


Rights = access.Rights
