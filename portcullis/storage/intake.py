"""Upload intake: spool the bytes (bounded memory), quarantine them, commit the upload row
and its scan job. The worker decides the rest; nothing here trusts the content."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from config import get_settings
from portcullis.callers import Caller
from portcullis.clients.object_store import ObjectStore
from portcullis.db import tenant_session
from portcullis.errors import DomainError
from portcullis.jobs.service import create_job
from portcullis.storage import access, types
from portcullis.storage.filenames import sanitise
from portcullis.storage.models import Upload, UploadStatus

SCAN_TASK = "tasks.scan.scan_upload"
SPOOL_IN_MEMORY = 1024 * 1024


class TooLarge(DomainError):
    status = 413


class Unsupported(DomainError):
    status = 415


def check_bucket(caller: Caller, bucket_id: uuid.UUID) -> None:
    """404 or 403 before a single byte of the body is read."""
    with tenant_session(access.tenant_of(caller)) as db:
        access.bucket_for(db, caller, bucket_id, "write")


def check_type(raw_filename: str | None, declared: str) -> str:
    filename = sanitise(raw_filename)
    if types.accepted_at_intake(filename, declared) is None:
        raise Unsupported("unsupported_type",
                          "Only PNG, JPEG, GIF, WebP, MP3, WAV, OGG, FLAC and M4A are accepted.")
    return filename


def receive(caller: Caller, bucket_id: uuid.UUID, filename: str, declared: str,
            chunks: Iterable[bytes], source: str = "api") -> Upload:
    settings = get_settings()
    limit = settings.UPLOAD_MAX_BYTES
    size = 0
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise TooLarge("payload_too_large", f"Uploads are at most {limit} bytes.")
            spool.write(chunk)
        spool.seek(0)
        key = f"q/{uuid.uuid4().hex}"  # random: nothing of the client's in a storage key
        ObjectStore.from_settings(settings).put_file(settings.S3_QUARANTINE_BUCKET, key,
                                                     spool, "application/octet-stream")
    tenant_id = access.tenant_of(caller)
    with tenant_session(tenant_id) as db:
        access.bucket_for(db, caller, bucket_id, "write")
        upload = Upload(id=uuid.uuid4(), tenant_id=tenant_id, bucket_id=bucket_id,
                        uploader_user_id=caller.user_id, status=UploadStatus.pending,
                        filename=filename, declared_type=declared.split(";")[0].strip().lower(),
                        size=size, quarantine_key=key, created_at=datetime.now(UTC))
        db.add(upload)
        db.flush()
        job = create_job(db, tenant_id=tenant_id, kind="upload.scan",
                         task_name=SCAN_TASK, args={"upload_id": str(upload.id),
                                                    "source": source},
                         created_by_user_id=caller.user_id)
        upload.job_id = job.id
        return upload
