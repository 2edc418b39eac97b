"""Drop-box intake: objects an SFTP account's client left under its prefix become uploads
of the account's bucket, one per object version, scanned by the same job as API uploads.

The object stays where SFTPGo wrote it (its key is the upload's ``quarantine_key``) until
it has a verdict; the scan reads that version only (its ETag). The database decides what
is new: (key, ETag, last modified) is unique among uploads, so two sweeps, a retry or a
rerun take a version in once. What cannot become a file (too large, a type outside the
allow-list) is rejected here, audited, and removed; so is a leftover whose verdict is in
but whose removal failed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from config import get_settings
from portcullis.audit.service import Target, record_all
from portcullis.callers import Caller
from portcullis.clients.object_store import Listed, ObjectStore
from portcullis.db import tenant_session
from portcullis.jobs.service import create_job
from portcullis.storage import types
from portcullis.storage.filenames import sanitise
from portcullis.storage.intake import SCAN_TASK
from portcullis.storage.models import Upload, UploadStatus
from portcullis.storage.scan import TERMINAL

OCTET_STREAM = "application/octet-stream"
KEY_LENGTH = 1024
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TakenIn:
    queued: int  # new uploads waiting on their scan
    rejected: int  # refused at once (too_large, unsupported_type)
    removed: int  # leftovers of versions that already had a verdict


def _refusal(name: str, size: int, limit: int) -> str | None:
    if size > limit:
        return "too_large"
    if types.BY_EXTENSION.get(types.extension_of(name)) is None:
        return "unsupported_type"
    return None


def take_in(tenant_id: uuid.UUID, bucket_id: uuid.UUID, account_id: uuid.UUID,
            objects: Sequence[Listed]) -> TakenIn:
    """Uploads (and scan jobs) for the versions in ``objects`` not yet taken in."""
    settings = get_settings()
    store = ObjectStore.from_settings(settings)
    unstorable = [o for o in objects if not _storable(o.key)]
    for obj in unstorable:  # a name no upload row can hold: it can never be taken in
        log.warning("removing a drop-box object whose key cannot be stored")
        store.delete(settings.S3_QUARANTINE_BUCKET, obj.key, if_match=obj.etag)
    objects = [o for o in objects if _storable(o.key)]
    if not objects:
        return TakenIn(0, len(unstorable), 0)
    caller = Caller.sftp(tenant_id, account_id)
    now = datetime.now(UTC)
    leftovers: list[Listed] = []
    refused: list[tuple[Listed, str]] = []
    queued = 0
    with tenant_session(tenant_id) as db:
        known = {(key, etag, modified): status for key, etag, modified, status in db.execute(
            select(Upload.quarantine_key, Upload.source_etag, Upload.source_modified,
                   Upload.status)
            .where(Upload.sftp_account_id == account_id,
                   Upload.quarantine_key.in_([o.key for o in objects])))}
        rows: list[dict[str, Any]] = []
        by_id: dict[uuid.UUID, tuple[Listed, str | None, str]] = {}
        for obj in objects:
            status = known.get((obj.key, obj.etag, obj.modified))
            if status is not None:
                if status in TERMINAL:
                    leftovers.append(obj)
                continue
            name = sanitise(obj.key.rsplit("/", 1)[-1])
            reason = _refusal(name, obj.size, settings.UPLOAD_MAX_BYTES)
            media = types.BY_EXTENSION.get(types.extension_of(name))
            upload_id = uuid.uuid4()
            by_id[upload_id] = (obj, reason, name)
            rows.append({
                "id": upload_id, "tenant_id": tenant_id, "bucket_id": bucket_id,
                "sftp_account_id": account_id, "filename": name,
                "declared_type": media.canonical if media else OCTET_STREAM,
                "size": obj.size, "quarantine_key": obj.key, "source_etag": obj.etag,
                "source_modified": obj.modified, "created_at": now,
                "status": UploadStatus.rejected if reason else UploadStatus.pending,
                "reason": reason, "finished_at": now if reason else None,
            })
        if not rows:
            inserted: list[uuid.UUID] = []
        else:  # a concurrent sweep that got there first wins: its rows are skipped here
            inserted = list(db.scalars(
                insert(Upload).values(rows)
                .on_conflict_do_nothing(constraint="uq_uploads_dropped_version")
                .returning(Upload.id)))
        jobs: list[dict[str, Any]] = []
        events: list[tuple[Caller, str, Target | None, dict[str, Any]]] = []
        for upload_id in inserted:
            obj, reason, name = by_id[upload_id]
            if reason is None:
                job = create_job(db, tenant_id=tenant_id, kind="upload.scan",
                                 task_name=SCAN_TASK, flush=False,
                                 args={"upload_id": str(upload_id), "source": "sftp"})
                jobs.append({"id": upload_id, "job_id": job.id})
            else:
                refused.append((obj, reason))
                events.append((caller, "upload.rejected", Target("upload", str(upload_id)),
                               {"reason": reason, "filename": name, "size": obj.size}))
        if jobs:
            db.flush()
            db.execute(update(Upload), jobs)
            queued = len(jobs)
        record_all(db, events)
    for obj in [*leftovers, *(o for o, _ in refused)]:
        store.delete(settings.S3_QUARANTINE_BUCKET, obj.key, if_match=obj.etag)
    return TakenIn(queued, len(refused) + len(unstorable), len(leftovers))


def _storable(key: str) -> bool:
    """PostgreSQL text holds no NUL, and the column no more than an S3 key's 1,024."""
    return "\x00" not in key and len(key) <= KEY_LENGTH
