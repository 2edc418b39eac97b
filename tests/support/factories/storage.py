"""Buckets, bucket permissions, uploads and files, built directly in the database (and, for
a file, its object in the files bucket), without the API or the scan worker.

Tests of creating a bucket or of the scan itself go through the API (``tests/support/media``);
these are for tests that need such things to exist.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from config import get_settings
from portcullis.db import tenant_session
from portcullis.storage.models import Bucket, BucketPermission, File, Upload, UploadStatus
from tests.support.factories.accounts import LoggedIn, Member

Owner = Member | LoggedIn | uuid.UUID  # a member (or their session), or just a tenant id


def _tenant_and_user(owner: Owner) -> tuple[uuid.UUID, uuid.UUID | None]:
    member = owner.member if isinstance(owner, LoggedIn) else owner
    if isinstance(member, Member):
        return member.tenant_id, member.user_id
    return member, None


def make_bucket(owner: Owner, name: str | None = None, *,
                expire_after_days: int | None = None) -> uuid.UUID:
    tenant_id, _ = _tenant_and_user(owner)
    bucket_id = uuid.uuid4()
    with tenant_session(tenant_id) as db:
        db.add(Bucket(id=bucket_id, tenant_id=tenant_id,
                      name=name or f"b-{bucket_id.hex[:10]}",
                      expire_after_days=expire_after_days))
    return bucket_id


def grant(bucket_id: uuid.UUID | str, who: Member | LoggedIn, *, read: bool = True,
          write: bool = False, delete: bool = False) -> None:
    """Give a member rights on a bucket (what PUT .../permissions/{member} stores)."""
    member = who.member if isinstance(who, LoggedIn) else who
    with tenant_session(member.tenant_id) as db:
        db.add(BucketPermission(tenant_id=member.tenant_id, bucket_id=uuid.UUID(str(bucket_id)),
                                membership_id=member.membership_id, can_read=read,
                                can_write=write, can_delete=delete))


def make_upload(owner: Owner, bucket_id: uuid.UUID | str, *,
                status: UploadStatus = UploadStatus.pending, reason: str | None = None,
                filename: str = "photo.png", declared_type: str = "image/png",
                size: int = 0) -> uuid.UUID:
    """An upload row only (no object, no job): for the states a test needs to see."""
    tenant_id, user_id = _tenant_and_user(owner)
    upload_id = uuid.uuid4()
    with tenant_session(tenant_id) as db:
        db.add(Upload(id=upload_id, tenant_id=tenant_id, bucket_id=uuid.UUID(str(bucket_id)),
                      uploader_user_id=user_id, status=status.value, reason=reason,
                      filename=filename, declared_type=declared_type, size=size,
                      quarantine_key=f"q/{uuid.uuid4().hex}",
                      finished_at=None if status in (UploadStatus.pending,
                                                     UploadStatus.scanning)
                      else datetime.now(UTC)))
    return upload_id


@dataclass(frozen=True)
class StoredFile:
    id: uuid.UUID
    tenant_id: uuid.UUID
    upload_id: uuid.UUID
    bucket_id: uuid.UUID
    filename: str
    content_type: str
    storage_key: str
    size: int
    sha256: str


def make_file(owner: Owner, bucket_id: uuid.UUID | str, data: bytes | None = None, *,
              filename: str = "photo.png", content_type: str = "image/png") -> StoredFile:
    """A clean file as the scan leaves it: the object in the files bucket under a random key,
    its upload ``clean`` and its file row. ``data`` defaults to a small PNG."""
    from portcullis.clients.object_store import ObjectStore

    if data is None:
        from tests.support.media import png

        data = png()
    tenant_id, user_id = _tenant_and_user(owner)
    bucket = uuid.UUID(str(bucket_id))
    settings = get_settings()
    key = f"f/{uuid.uuid4().hex}"
    ObjectStore.from_settings(settings).put_stream(settings.S3_BUCKET, key, io.BytesIO(data),
                                                   content_type)
    sha256 = hashlib.sha256(data).hexdigest()
    upload_id, file_id = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    with tenant_session(tenant_id) as db:
        db.add(Upload(id=upload_id, tenant_id=tenant_id, bucket_id=bucket,
                      uploader_user_id=user_id, status=UploadStatus.clean.value,
                      filename=filename, declared_type=content_type, size=len(data),
                      quarantine_key=f"q/{uuid.uuid4().hex}", file_key=key,
                      sniffed_type=content_type, sha256=sha256, finished_at=now))
        db.flush()
        db.add(File(id=file_id, tenant_id=tenant_id, bucket_id=bucket, upload_id=upload_id,
                    filename=filename, content_type=content_type, size=len(data),
                    sha256=sha256, storage_key=key))
        db.flush()
        db.get_one(Upload, upload_id).file_id = file_id
    return StoredFile(file_id, tenant_id, upload_id, bucket, filename, content_type, key,
                      len(data), sha256)
