"""The scan pipeline (worker, ``scan`` queue): nothing becomes a file until it is clean.

Order: virus scan first (an infected file is ``infected`` whatever its type), then empty,
then declared/extension/sniffed agreement, then a real decoder. clamd or storage down
raises DependencyUnavailable: the job retries with backoff and the upload stays
``scanning``, never ``clean`` without a verdict. Infected objects are deleted from
quarantine at once (no forensic copy: the signature name and SHA-256 are in the audit
event). Every step is safe to repeat. A file records when it was scanned and under which
signature version, read before the scan (so it never claims newer signatures than scanned
it): stored files are scanned again by ``rescan``.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import magic
from sqlalchemy import select

from config import get_settings
from portcullis.alerts.service import AlertType, raise_alert
from portcullis.audit.service import Severity, Target, record
from portcullis.callers import Caller, Kind
from portcullis.clients.clamd import ClamdClient
from portcullis.clients.object_store import (
    ObjectNotFound,
    ObjectStore,
    StorageError,
    VersionChanged,
)
from portcullis.db import system_session, tenant_session
from portcullis.errors import DependencyUnavailable
from portcullis.jobs.service import failed_job_ids, on_give_up
from portcullis.storage import decoders, types
from portcullis.storage.models import File, Upload, UploadStatus

TERMINAL = {UploadStatus.clean, UploadStatus.rejected, UploadStatus.infected}


def _summary(upload: Upload) -> dict[str, Any]:
    return {"upload_id": str(upload.id), "status": upload.status, "reason": upload.reason,
            "file_id": str(upload.file_id) if upload.file_id else None}


def _actor(upload: Upload) -> Caller:
    """Verdicts are recorded as the uploader's: the member, the SFTP account whose drop box
    it came from, or the system for an upload without either."""
    if upload.sftp_account_id is not None:
        return Caller.sftp(upload.tenant_id, upload.sftp_account_id)
    if upload.uploader_user_id is None:
        return Caller.system(upload.tenant_id)
    return Caller(Kind.user, upload.tenant_id, upload.uploader_user_id)


def _discard(store: ObjectStore, quarantine: str, upload: Upload) -> None:
    """Remove the scanned object: a drop-box object only in the version that was scanned
    (a newer one under the same key is another upload, taken in by the next sweep)."""
    store.delete(quarantine, upload.quarantine_key, if_match=upload.source_etag)


def _begin(tenant_id: uuid.UUID, upload_id: uuid.UUID) -> Upload:
    with tenant_session(tenant_id) as db:
        upload = db.get(Upload, upload_id, with_for_update=True)
        assert upload is not None
        if upload.status not in TERMINAL:
            upload.status = UploadStatus.scanning
            upload.file_key = upload.file_key or f"f/{uuid.uuid4().hex}"
        db.flush()
        db.expunge(upload)
        return upload


def _overrides(status: UploadStatus, row: Upload) -> bool:
    """A malware verdict that arrives after the scan was given up still counts (audited and
    alerted): ``scan_failed`` is no verdict."""
    return status is UploadStatus.infected and row.reason == "scan_failed"


def _finish(tenant_id: uuid.UUID, upload: Upload, status: UploadStatus, reason: str | None,
            details: dict[str, Any]) -> None:
    with tenant_session(tenant_id) as db:
        row = db.get(Upload, upload.id, with_for_update=True)
        assert row is not None
        if row.status in TERMINAL and not _overrides(status, row):
            return
        row.status, row.reason, row.finished_at = status, reason, datetime.now(UTC)
        action = f"upload.{status.value}"
        record(db, _actor(upload), action, Target("upload", str(upload.id)),
               {"reason": reason, "filename": upload.filename, **details}, tenant_id=tenant_id)
        if status is UploadStatus.infected:
            raise_alert(db, tenant_id, AlertType.malware_detected, Severity.critical,
                        f"Malware ({details.get('malware_name')}) in an upload", _actor(upload),
                        None, {"upload_id": str(upload.id), "bucket_id": str(upload.bucket_id),
                               **details})


def scan_upload(tenant_id: uuid.UUID, upload_id: uuid.UUID,
                progress: Callable[[int], None]) -> dict[str, Any]:
    settings = get_settings()
    store = ObjectStore.from_settings(settings)
    upload = _begin(tenant_id, upload_id)
    if upload.status in TERMINAL:
        return _summary(upload)
    quarantine = settings.S3_QUARANTINE_BUCKET
    progress(5)
    with tempfile.TemporaryDirectory(prefix="portcullis-scan-") as scratch, \
            tempfile.TemporaryFile(dir=scratch) as unnamed:
        # One read of the object: the bytes go to clamd, the hash and a scratch copy that
        # has no name (it dies with the process, whatever kills it) until they are clean.
        digest = hashlib.sha256()

        def tee() -> Generator[bytes]:
            for chunk in store.open_stream(quarantine, upload.quarantine_key,
                                           if_match=upload.source_etag):
                digest.update(chunk)
                unnamed.write(chunk)
                yield chunk

        clamd = ClamdClient.from_settings(settings)
        signatures = clamd.signature_version()
        try:
            with contextlib.closing(tee()) as chunks:
                verdict = clamd.scan_stream(chunks)
        except (VersionChanged, ObjectNotFound):
            if upload.source_etag is None:
                raise
            # The SFTP client replaced or removed the object before it was scanned: this
            # version never becomes a file (a replacement is an upload of its own).
            _finish(tenant_id, upload, UploadStatus.rejected, "superseded", {})
            return _reload(tenant_id, upload_id)
        scanned = Scanned(datetime.now(UTC), signatures)
        progress(40)
        if verdict.infected:
            _discard(store, quarantine, upload)
            _finish(tenant_id, upload, UploadStatus.infected, "malware",
                    {"malware_name": verdict.signature})
            return _reload(tenant_id, upload_id)
        if upload.size == 0:
            _discard(store, quarantine, upload)
            _finish(tenant_id, upload, UploadStatus.rejected, "empty", {})
            return _reload(tenant_id, upload_id)
        if unnamed.tell() != upload.size:  # storage cut the stream short: try again
            raise DependencyUnavailable("storage", "the object ended before its size")
        path = Path(scratch) / "content"  # libmagic and the decoders read a named file
        unnamed.seek(0)
        with path.open("wb") as named:
            shutil.copyfileobj(unnamed, named, 1 << 20)
        progress(55)
        sniffed = magic.from_file(str(path), mime=True)
        media = types.agrees(upload.filename, upload.declared_type, sniffed)
        details = {"sniffed_type": sniffed, "sha256": digest.hexdigest()}
        if media is None:
            _discard(store, quarantine, upload)
            _finish(tenant_id, upload, UploadStatus.rejected, "type_mismatch", details)
            return _reload(tenant_id, upload_id)
        try:
            decoders.check(path, media)
        except decoders.Undecodable as exc:
            _discard(store, quarantine, upload)
            _finish(tenant_id, upload, UploadStatus.rejected, "corrupt",
                    {**details, "decoder": str(exc)[:120]})
            return _reload(tenant_id, upload_id)
        progress(75)
        assert upload.file_key is not None
        if upload.source_etag is not None:
            # A drop box is writable by its SFTP client: the file is made of the very bytes
            # that were scanned, never of whatever the key holds by now.
            unnamed.seek(0)
            store.put_file(settings.S3_BUCKET, upload.file_key, unnamed, media.canonical)
        else:
            try:
                store.copy(quarantine, upload.quarantine_key, settings.S3_BUCKET,
                           upload.file_key, size=upload.size)
            except ObjectNotFound:
                settled = _reload(tenant_id, upload_id)
                if settled["status"] in TERMINAL:  # given up meanwhile, deleted with it
                    return settled
                raise
    if not _promote(tenant_id, upload, media.canonical, digest.hexdigest(), sniffed, scanned):
        store.delete(settings.S3_BUCKET, upload.file_key)  # settled meanwhile: no orphan copy
    _discard(store, quarantine, upload)
    return _reload(tenant_id, upload_id)


@dataclass(frozen=True)
class Scanned:
    at: datetime
    signature_version: int


def _promote(tenant_id: uuid.UUID, upload: Upload, content_type: str, sha256: str,
             sniffed: str, scanned: Scanned) -> bool:
    """The clean verdict and the file row; False if the upload was settled meanwhile."""
    with tenant_session(tenant_id) as db:
        row = db.get(Upload, upload.id, with_for_update=True)
        assert row is not None and upload.file_key is not None
        if row.status in TERMINAL:
            return row.status == UploadStatus.clean and row.file_id is not None
        existing = db.scalar(select(File.id).where(File.upload_id == upload.id))
        file_id = existing or uuid.uuid4()
        if existing is None:
            db.add(File(id=file_id, tenant_id=tenant_id, bucket_id=upload.bucket_id,
                        upload_id=upload.id, filename=upload.filename,
                        content_type=content_type, size=upload.size, sha256=sha256,
                        storage_key=upload.file_key, scanned_at=scanned.at,
                        signature_version=scanned.signature_version))
            db.flush()
        row.status, row.reason, row.file_id = UploadStatus.clean, None, file_id
        row.sha256, row.sniffed_type, row.finished_at = sha256, sniffed, datetime.now(UTC)
        record(db, _actor(upload), "upload.clean", Target("upload", str(upload.id)),
               {"file_id": str(file_id), "sha256": sha256, "content_type": content_type},
               tenant_id=tenant_id)
    return True


@on_give_up("upload.scan")
def scan_gave_up(tenant_id: uuid.UUID | None, args: dict[str, Any]) -> None:
    """A scan that can never finish (retries spent, workers lost, an unexpected error) ends
    ``rejected`` with reason ``scan_failed``: never clean without a verdict, never stuck in
    ``scanning``. The quarantined object goes too, if storage answers."""
    assert tenant_id is not None
    with tenant_session(tenant_id) as db:
        upload = db.get(Upload, uuid.UUID(args["upload_id"]))
        if upload is None or upload.status in TERMINAL:
            return
        db.expunge(upload)
    _finish(tenant_id, upload, UploadStatus.rejected, "scan_failed", {})
    settings = get_settings()
    # Best effort: if storage is down the object stays in quarantine, where nothing ever
    # serves it; the upload is settled either way.
    with contextlib.suppress(DependencyUnavailable, StorageError):
        _discard(ObjectStore.from_settings(settings), settings.S3_QUARANTINE_BUCKET, upload)


def settle_failed_scans(limit: int = 200) -> int:
    """The safety net behind ``scan_gave_up``: uploads still waiting on a scan job that has
    failed (the handler itself failed, or the process that failed the job never loaded
    it) are settled the same way. Returns how many."""
    with system_session() as db:
        waiting = db.execute(
            select(Upload.tenant_id, Upload.id)
            .where(Upload.status.in_([UploadStatus.pending, UploadStatus.scanning]),
                   Upload.job_id.in_(failed_job_ids()))
            .limit(limit)).all()
    for tenant_id, upload_id in waiting:
        scan_gave_up(tenant_id, {"upload_id": str(upload_id)})
    return len(waiting)


def _reload(tenant_id: uuid.UUID, upload_id: uuid.UUID) -> dict[str, Any]:
    with tenant_session(tenant_id) as db:
        upload = db.get(Upload, upload_id)
        assert upload is not None
        return _summary(upload)
