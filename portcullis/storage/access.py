"""Who may do what with a bucket, an upload or a link (API.md's table).

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

from portcullis.accounts.caller import Caller
from portcullis.accounts.models import Membership, Role
from portcullis.errors import Forbidden, NotFound
from portcullis.links.models import ShareLink
from portcullis.storage.models import Bucket, BucketPermission, Upload

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


def link_for(db: Session, caller: Caller, link_id: uuid.UUID, change: bool = False,
             lock: bool = False) -> ShareLink:
    """A file link, if the caller may read it (else 404): its creator, an admin, or anyone
    who may read its file's bucket (they may list its links). Changing it (``change``) is
    for its creator or an admin only (else 403)."""
    stmt = select(ShareLink).where(ShareLink.id == link_id,
                                   ShareLink.tenant_id == caller.tenant_id,
                                   ShareLink.kind == "file")
    link = db.scalars(stmt.with_for_update() if lock else stmt).first()
    if link is None:
        raise NotFound("link")
    own = caller.role is Role.admin or link.created_by_user_id == caller.user_id
    if not own:
        if link.bucket_id is None or db.get(Bucket, link.bucket_id) is None \
                or not rights(db, caller, link.bucket_id).read:
            raise NotFound("link")
        if change:
            raise Forbidden("forbidden", "Only the link's creator or an admin may change it.")
    return link
