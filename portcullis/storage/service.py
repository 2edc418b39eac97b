"""Storage's public face: what the front door, the tasks and other domains call.

Each function takes who acts (a ``Caller``) and owns its unit of work, answering plain
values, never rows bound to a session; the few that take ``db`` are for another domain's
service, inside its transaction. Who may do what is decided here (``access``): visibility
first (404), then role and permission (403).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, Subquery, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from portcullis.callers import Caller
from portcullis.clients.object_store import Listed
from portcullis.db import tenant_session
from portcullis.pagination import Page, PageRequest, keyset
from portcullis.storage import access, buckets, dropbox, files, intake, rescan, scan
from portcullis.storage.buckets import BucketView
from portcullis.storage.dropbox import TakenIn
from portcullis.storage.models import Bucket, EgressDaily, File, Upload

__all__ = [
    "RESCAN_TASK", "Accepted", "BucketView", "FileRef", "FileView", "Grant", "Incoming",
    "Lifecycle", "Rescanned", "TakenIn", "UploadView", "can_read_bucket", "create_bucket",
    "delete_bucket", "delete_file", "egress_per_day", "expire_files", "get_upload",
    "list_buckets", "list_files", "queue_rescan", "readable_file", "record_egress",
    "rescan_files", "rescan_job", "scan_upload", "schedule_rescan", "set_lifecycle",
    "set_permissions", "settle_failed_scans", "stored_per_bucket", "take_in_dropped", "upload",
]

RESCAN_TASK = rescan.RESCAN_TASK
Rescanned = rescan.Rescanned


_tenant = access.tenant_of


# --- buckets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    bucket_id: uuid.UUID
    member_id: uuid.UUID
    read: bool
    write: bool
    delete: bool


@dataclass(frozen=True)
class Lifecycle:
    bucket_id: uuid.UUID
    expire_after_days: int | None


def list_buckets(caller: Caller, page: PageRequest) -> Page[BucketView]:
    """The buckets the caller may read, oldest first (one round trip)."""
    return buckets.readable_page(caller, page)


def create_bucket(caller: Caller, name: str) -> BucketView:
    with tenant_session(_tenant(caller)) as db:
        bucket = buckets.create(db, caller, name)
        return buckets.views_of(db, [bucket])[0]


def delete_bucket(caller: Caller, bucket_id: uuid.UUID) -> None:
    """Admins; an empty bucket only (409 ``bucket_not_empty``)."""
    with tenant_session(_tenant(caller)) as db:
        buckets.delete(db, caller, bucket_id)


def set_permissions(caller: Caller, bucket_id: uuid.UUID, member_id: uuid.UUID, *,
                    read: bool, write: bool, delete: bool) -> Grant:
    """Admins and managers grant a member rights on a bucket (view-only: read only)."""
    with tenant_session(_tenant(caller)) as db:
        granted = buckets.set_permissions(db, caller, bucket_id, member_id, read, write,
                                          delete)
    return Grant(bucket_id, member_id, granted.read, granted.write, granted.delete)


def set_lifecycle(caller: Caller, bucket_id: uuid.UUID,
                  expire_after_days: int | None) -> Lifecycle:
    """Admins and managers: files older than ``expire_after_days`` are deleted hourly."""
    with tenant_session(_tenant(caller)) as db:
        bucket = buckets.set_lifecycle(db, caller, bucket_id, expire_after_days)
        return Lifecycle(bucket.id, bucket.expire_after_days)


# --- uploads -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Incoming:
    """A file as the client sends it: its name and declared type (untrusted), its bytes."""

    filename: str | None
    content_type: str
    chunks: Iterable[bytes]


@dataclass(frozen=True)
class Accepted:
    id: uuid.UUID
    job_id: uuid.UUID


@dataclass(frozen=True)
class UploadView:
    id: uuid.UUID
    status: str
    reason: str | None
    file_id: uuid.UUID | None


def upload(caller: Caller, bucket_id: uuid.UUID, receive: Callable[[], Incoming],
           source: str = "api") -> Accepted:
    """Quarantine a file and queue its scan. ``receive`` opens the body: it is called only
    once the caller may write the bucket (404 or 403 before a byte is read), and a name or
    declared type outside the allow-list is a 415 before the rest is read."""
    intake.check_bucket(caller, bucket_id)
    incoming = receive()
    filename = intake.check_type(incoming.filename, incoming.content_type)
    received = intake.receive(caller, bucket_id, filename, incoming.content_type,
                              incoming.chunks, source)
    assert received.job_id is not None
    return Accepted(received.id, received.job_id)


def get_upload(caller: Caller, upload_id: uuid.UUID) -> UploadView:
    """An upload's verdict, for its uploader and admins (anyone else: 404)."""
    with tenant_session(_tenant(caller)) as db:
        row: Upload = access.upload_for(db, caller, upload_id)
        return UploadView(row.id, row.status, row.reason, row.file_id)


def scan_upload(tenant_id: uuid.UUID, upload_id: uuid.UUID,
                progress: Callable[[int], None]) -> dict[str, Any]:
    """The scan job (worker): virus scan, type checks, decoder; the verdict."""
    return scan.scan_upload(tenant_id, upload_id, progress)


def settle_failed_scans() -> int:
    """Uploads whose scan job failed for good end ``rejected`` (``scan_failed``)."""
    return scan.settle_failed_scans()


def take_in_dropped(tenant_id: uuid.UUID, bucket_id: uuid.UUID, account_id: uuid.UUID,
                    objects: Sequence[Listed]) -> TakenIn:
    """An SFTP account's drop-box objects (sftp's sweep lists them) become uploads of its
    bucket, each version once, uploaded by the account; their scans are queued."""
    return dropbox.take_in(tenant_id, bucket_id, account_id, objects)


# --- files ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileView:
    id: uuid.UUID
    filename: str
    content_type: str
    size: int
    sha256: str
    created_at: datetime


def _file_view(file: File) -> FileView:
    return FileView(file.id, file.filename, file.content_type, file.size, file.sha256,
                    file.created_at)


def list_files(caller: Caller, bucket_id: uuid.UUID, page: PageRequest) -> Page[FileView]:
    """A readable bucket's files, newest first."""
    with tenant_session(_tenant(caller)) as db:
        found = keyset(db, files.files_query(db, caller, bucket_id), [File.created_at, File.id],
                       [datetime, uuid.UUID], page)
        return found.map(_file_view)


def delete_file(caller: Caller, file_id: uuid.UUID) -> None:
    """Object and row, audited, counted for the mass-deletion rule; its links are revoked."""
    with tenant_session(_tenant(caller)) as db:
        files.delete(db, caller, file_id)


def expire_files() -> int:
    """The lifecycle sweep (beat): delete files older than their bucket's rule."""
    return files.expire_due()


def rescan_files(actor: Caller, tenant_id: uuid.UUID | None = None,
                 progress: Callable[[int, int], None] | None = None) -> Rescanned:
    """Scan stored files again at once (the CLI): those scanned under an older signature
    version than clamd's first, then those scanned over RESCAN_AFTER_DAYS ago; one found
    infected is quarantined, audited as ``actor`` in its tenant and alerted."""
    return rescan.rescan(actor, tenant_id, progress)


def queue_rescan(tenant_id: uuid.UUID | None = None) -> uuid.UUID | None:
    """A rescan job, unless one for the same files is queued or running (its id, or None)."""
    return rescan.queue(tenant_id)


def schedule_rescan(tenant_id: uuid.UUID | None = None) -> uuid.UUID | None:
    """Beat: a rescan job when some file is due and none is unfinished."""
    return rescan.schedule(tenant_id)


def rescan_job(args: dict[str, Any], progress: Callable[[int], None]) -> dict[str, Any]:
    """The rescan job's body (worker, ``scan`` queue), by the system."""
    return rescan.run_job(args, progress)


# --- for other domains ---------------------------------------------------------------------


@dataclass(frozen=True)
class FileRef:
    """Where a file's bytes are and what to call them: what a share link needs."""

    id: uuid.UUID
    bucket_id: uuid.UUID
    storage_key: str
    filename: str
    content_type: str
    size: int


def readable_file(db: Session, caller: Caller, file_id: uuid.UUID) -> FileRef:
    """A file the caller may read (else 404), in the caller's transaction."""
    file = files.file_for(db, caller, file_id, "read")
    return FileRef(file.id, file.bucket_id, file.storage_key, file.filename,
                   file.content_type, file.size)


def can_read_bucket(db: Session, caller: Caller, bucket_id: uuid.UUID) -> bool:
    """The bucket exists in the caller's tenant and they may read it."""
    return access.can_read_bucket(db, caller, bucket_id)


def record_egress(tenant_id: uuid.UUID, bucket_id: uuid.UUID, sent: int) -> None:
    """Add bytes served from a bucket to its day's egress (what billing reads)."""
    if sent <= 0:
        return
    with tenant_session(tenant_id) as db:
        db.execute(insert(EgressDaily).values(
            tenant_id=tenant_id, bucket_id=bucket_id, day=datetime.now(UTC).date(), bytes=sent)
            .on_conflict_do_update(constraint="uq_egress_daily_bucket_day",
                                   set_={"bytes": EgressDaily.bytes + sent}))


# --- for billing -----------------------------------------------------------------------------


def stored_per_bucket() -> Select[uuid.UUID, uuid.UUID, int, int]:
    """``(tenant_id, bucket_id, bytes, objects)`` of every bucket as it stands (files exist
    only once scanned clean; an empty bucket stores 0), for billing's usage collection to
    insert from in one statement."""
    return (select(Bucket.tenant_id, Bucket.id.label("bucket_id"),
                   func.coalesce(func.sum(File.size), 0).label("bytes"),
                   func.count(File.id).label("objects"))
            .select_from(Bucket).outerjoin(File, File.bucket_id == Bucket.id)
            .group_by(Bucket.tenant_id, Bucket.id))


def egress_per_day() -> Subquery:
    """``(tenant_id, bucket_id, day, bytes)``: what share links served per bucket and day."""
    return select(EgressDaily.tenant_id, EgressDaily.bucket_id, EgressDaily.day,
                  EgressDaily.bytes).subquery("egress")
