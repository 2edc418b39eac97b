"""Files: list, delete (storage object and row, audited, counted for mass deletion), expire.

A deleted file's share links are revoked by the database in the same transaction (a trigger
on ``files``, migration 0007): links name files, files know nothing of links.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from config import get_settings
from portcullis.alerts import service as alerts
from portcullis.audit.service import Target, record
from portcullis.callers import Caller
from portcullis.clients.object_store import ObjectStore
from portcullis.db import system_session, tenant_session
from portcullis.errors import NotFound
from portcullis.storage import access
from portcullis.storage.models import Bucket, File

log = logging.getLogger(__name__)


def files_query(db: Session, caller: Caller, bucket_id: uuid.UUID) -> Select[File]:
    bucket = access.bucket_for(db, caller, bucket_id, "read")
    return select(File).where(File.bucket_id == bucket.id, File.tenant_id == caller.tenant_id)


def file_for(db: Session, caller: Caller, file_id: uuid.UUID, need: str = "read") -> File:
    """The file if its bucket is readable by the caller (else 404) and ``need`` is held."""
    file = db.scalars(select(File).where(File.id == file_id,
                                         File.tenant_id == caller.tenant_id)).first()
    if file is None:
        raise NotFound("file")
    try:
        access.bucket_for(db, caller, file.bucket_id, need)
    except NotFound:
        raise NotFound("file") from None
    return file


def _remove(db: Session, caller: Caller, file: File, reason: str) -> None:
    settings = get_settings()
    # The object goes first: a retry after a crash finds the row and deletes again (idempotent).
    ObjectStore.from_settings(settings).delete(settings.S3_BUCKET, file.storage_key)
    record(db, caller, "file.deleted", Target("file", str(file.id)),
           {"filename": file.filename, "bucket_id": str(file.bucket_id), "size": file.size,
            "reason": reason})
    db.delete(file)
    db.flush()  # the row goes now, and its links with it (the trigger)


def delete(db: Session, caller: Caller, file_id: uuid.UUID) -> None:
    file = file_for(db, caller, file_id, "delete")
    _remove(db, caller, file, "deleted")
    alerts.deletion(db, caller)


def expire_due(limit: int = 1000) -> int:
    """Delete files older than their bucket's lifecycle; each deletion audited."""
    now = datetime.now(UTC)
    with system_session() as db:
        buckets = db.execute(select(Bucket.tenant_id, Bucket.id, Bucket.expire_after_days)
                             .where(Bucket.expire_after_days.is_not(None))).all()
    deleted = 0
    for tenant_id, bucket_id, days in buckets:
        cutoff = now - timedelta(days=days or 0)  # never None: the query asks for a rule
        system = Caller.system(tenant_id)
        with tenant_session(tenant_id) as db:
            due = db.scalars(select(File).where(File.bucket_id == bucket_id,
                                                File.created_at < cutoff)
                             .order_by(File.created_at).limit(limit)
                             .with_for_update(skip_locked=True)).all()
            for file in due:
                _remove(db, system, file, "lifecycle")
                deleted += 1
    if deleted:
        log.info("lifecycle deleted %s file(s)", deleted)
    return deleted
