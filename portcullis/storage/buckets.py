"""Buckets: create, list what the caller may read, delete when empty, grant, lifecycle.

Each function runs in the caller's transaction (``db``); ``storage.service`` opens it. Object
routes check visibility first (404), then the role (403), then the permission (403).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Integer,
    Select,
    bindparam,
    exists,
    func,
    literal_column,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy import delete as delete_rows
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portcullis.accounts import service as accounts
from portcullis.audit.service import Target, record
from portcullis.callers import Caller, Role
from portcullis.db.session import one_round_trip, prepared, tenant_steps
from portcullis.errors import Conflict, Invalid, NotFound
from portcullis.pagination import Page, PageRequest, decode_cursor, encode_cursor
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


# The page of buckets a caller may read, oldest first, with each one's size and file count:
# one prepared statement, sent with its tenant scope in one round trip (``tenant_steps``),
# instead of an ORM unit of work (BEGIN and scope, the page, the sizes, COMMIT). Admins and
# managers read every bucket of the tenant (``full_access``), anyone else those their
# membership was granted read on, exactly as ``readable_query``. Keyset order as
# ``pagination.keyset``: the first page starts after the earliest possible key.
_member = accounts.joinable_memberships()
_sizes = (select(func.coalesce(func.sum(File.size), literal_column("0")).label("bytes"),
                 func.count().label("objects"))
          .where(File.bucket_id == Bucket.id).lateral("sizes"))
_READABLE_PAGE = prepared("portcullis_readable_buckets", (
    select(Bucket.id, Bucket.name, Bucket.created_at, _sizes.c.bytes, _sizes.c.objects)
    .select_from(Bucket).join(_sizes, true())
    .where(Bucket.tenant_id == bindparam("tenant_id"),
           or_(bindparam("full_access", type_=Boolean), exists().where(
               BucketPermission.bucket_id == Bucket.id, BucketPermission.can_read.is_(True),
               BucketPermission.membership_id == _member.c.id,
               _member.c.user_id == bindparam("user_id"),
               _member.c.tenant_id == bindparam("tenant_id"))),
           tuple_(Bucket.created_at, Bucket.id)
           > tuple_(bindparam("after_created"), bindparam("after_id")))
    .order_by(Bucket.created_at, Bucket.id).limit(bindparam("limit", type_=Integer))))
_FIRST_KEY = [datetime.min.replace(tzinfo=UTC), uuid.UUID(int=0)]


def readable_page(caller: Caller, page: PageRequest) -> Page[BucketView]:
    """The buckets ``caller`` may read, oldest first, one page (``readable_query`` and
    ``views_of`` in one round trip)."""
    tenant_id = access.tenant_of(caller)
    after = decode_cursor(page.cursor, [datetime, uuid.UUID]) if page.cursor else _FIRST_KEY
    rows = one_round_trip(tenant_steps(tenant_id, _READABLE_PAGE, {
        "tenant_id": tenant_id, "full_access": caller.role in access.FULL_ACCESS,
        "user_id": caller.user_id or uuid.UUID(int=0), "after_created": after[0],
        "after_id": after[1], "limit": page.limit + 1}))
    more = len(rows) > page.limit
    rows = rows[:page.limit]
    next_cursor = encode_cursor([rows[-1].created_at, rows[-1].id]) if more and rows else None
    return Page([BucketView(r.id, r.name, r.created_at, int(r.bytes), int(r.objects))
                 for r in rows], next_cursor)


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
    try:
        with db.begin_nested():
            db.delete(bucket)
    except IntegrityError as exc:  # sftp's accounts name their bucket; storage can't see them
        if "fk_sftp_accounts_bucket_id_buckets" not in str(exc.orig):
            raise
        raise Conflict("bucket_in_use", "SFTP accounts feed this bucket: delete them first."
                       ) from None
    record(db, caller, "bucket.deleted", Target("bucket", str(bucket.id)), {"name": bucket.name})


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
