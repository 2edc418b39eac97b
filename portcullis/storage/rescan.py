"""Stored files scanned again, because signatures keep coming after a file was called clean.

Which files, in this order: every file scanned under an older signature version than clamd
reports now (None, a file from before versions were recorded, counts as older than any),
then every file whose last scan is older than ``RESCAN_AFTER_DAYS``; each group oldest scan
first, ``BATCH`` files at a time, each file in transactions of its own. Versions compare as
numbers and only an older one counts, so clamds a release apart never make each other's
files due again and again. A clean file records the new scan's time and version.

A file found infected is taken out at once. Its object is copied to the quarantine bucket
under ``QUARANTINE_PREFIX``, which nothing else writes or deletes (uploads are staged under
``q/``, SFTP accounts are jailed to ``sftp/<id>/``); the bucket is not created with S3 Object
Lock, so the prefix is the lock, and the application never deletes under it. Then, in one
transaction: a ``quarantined_files`` record, the file row deleted (listing, downloads,
usage and billing all read file rows; the 0007 trigger revokes its share links, which then
answer 404), ``file.quarantined`` audited with the signature, ``alert.malware_detected``
raised. Last the original object goes; a crash before that leaves a record whose source
is not removed, and the next run removes it first. Never a file deleted without its copy.

clamd or storage down raises DependencyUnavailable: the job retries with backoff; what was
done stays done, and what was not is still due. A file clamd answers without a verdict
(``... ERROR``) keeps its last scan and is left for the next run.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, case, func, or_, select, update
from sqlalchemy.orm import Session

from config import Settings, get_settings
from portcullis.alerts.service import AlertType, raise_alert
from portcullis.audit.service import Severity, Target, record
from portcullis.callers import Caller
from portcullis.clients.clamd import ClamdClient, ClamdScanError, ScanResult
from portcullis.clients.object_store import ObjectNotFound, ObjectStore
from portcullis.db import system_session, tenant_session
from portcullis.jobs import service as jobs
from portcullis.storage.models import File, QuarantinedFile

log = logging.getLogger(__name__)

RESCAN_TASK = "tasks.scan.rescan_files"
JOB_KIND = "files.rescan"
BATCH = 50  # files per query: a batch's rows are read at once, its scans one by one
JOB_BUDGET_SECONDS = 3000  # a job takes no new batch after this (its time limit is 3300 s)
QUARANTINE_PREFIX = "quarantined/"

Progress = Callable[[int, int], None]
_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class Rescanned:
    clean: int
    quarantined: int
    unscanned: int  # no verdict (clamd's ERROR, the object missing): still due
    remaining: int  # due, left for the next run (the job's time budget ran out)


@dataclass(frozen=True)
class _Due:
    tenant_id: uuid.UUID
    id: uuid.UUID
    storage_key: str


@dataclass(frozen=True)
class _Rule:
    """What makes a file due: scanned under an older version than ``current``, or before
    ``cutoff``; in ``tenant_id``'s files only, if given."""

    current: int
    cutoff: datetime
    tenant_id: uuid.UUID | None

    @property
    def stale(self) -> ColumnElement[bool]:
        return or_(File.signature_version.is_(None), File.signature_version < self.current)

    def where(self, query: _Query) -> _Query:
        query = query.where(or_(self.stale, File.scanned_at < self.cutoff))
        if self.tenant_id is not None:
            query = query.where(File.tenant_id == self.tenant_id)
        return query


def _rule(clamd: ClamdClient, settings: Settings, tenant_id: uuid.UUID | None) -> _Rule:
    cutoff = datetime.now(UTC) - timedelta(days=settings.RESCAN_AFTER_DAYS)
    return _Rule(clamd.signature_version(), cutoff, tenant_id)


def _session(tenant_id: uuid.UUID | None) -> contextlib.AbstractContextManager[Session]:
    """One tenant's scope when the run is for one tenant, else the system's (every tenant)."""
    return tenant_session(tenant_id) if tenant_id is not None else system_session()


def _count(rule: _Rule) -> int:
    with _session(rule.tenant_id) as db:
        return int(db.scalar(rule.where(select(func.count()).select_from(File))) or 0)


def _batch(rule: _Rule, skip: list[uuid.UUID], limit: int) -> list[_Due]:
    query = rule.where(select(File.tenant_id, File.id, File.storage_key))
    if skip:
        query = query.where(File.id.not_in(skip))
    query = query.order_by(case((rule.stale, 0), else_=1), File.scanned_at, File.id)
    with _session(rule.tenant_id) as db:
        return [_Due(*row) for row in db.execute(query.limit(limit))]


def is_due(tenant_id: uuid.UUID | None = None) -> bool:
    """Whether any file is due (beat asks before queueing a job)."""
    settings = get_settings()
    rule = _rule(ClamdClient.from_settings(settings), settings, tenant_id)
    with _session(tenant_id) as db:
        return db.scalar(rule.where(select(File.id)).limit(1)) is not None


def rescan(actor: Caller, tenant_id: uuid.UUID | None = None,
           progress: Progress | None = None, *, budget: float | None = None) -> Rescanned:
    """Scan every due file again (one tenant's, with ``tenant_id``); ``progress(done,
    total)`` after each batch. ``actor`` (the system, the CLI's operator) is who the audit
    trail names, in each file's tenant. ``budget``: seconds after which no batch starts."""
    settings = get_settings()
    store = ObjectStore.from_settings(settings)
    clamd = ClamdClient.from_settings(settings)
    _finish_moves(store, settings, tenant_id)
    rule = _rule(clamd, settings, tenant_id)
    total = _count(rule)
    report = progress or (lambda _done, _total: None)
    report(0, total)
    deadline = None if budget is None else time.monotonic() + budget
    done = quarantined = remaining = 0
    skip: list[uuid.UUID] = []
    while done < total:
        if deadline is not None and time.monotonic() >= deadline:
            remaining = total - done
            break
        batch = _batch(rule, skip, min(BATCH, total - done))
        if not batch:  # deleted meanwhile
            break
        for item in batch:
            outcome = _rescan_one(store, clamd, settings, actor, item, rule.current)
            if outcome is None:
                skip.append(item.id)
            quarantined += outcome is True
            done += 1
        report(done, total)
    return Rescanned(done - quarantined - len(skip), quarantined, len(skip), remaining)


def _rescan_one(store: ObjectStore, clamd: ClamdClient, settings: Settings, actor: Caller,
                item: _Due, version: int) -> bool | None:
    """True: quarantined; False: clean (or deleted meanwhile); None: no verdict."""
    def stream() -> Generator[bytes]:
        yield from store.open_stream(settings.S3_BUCKET, item.storage_key)

    try:
        with contextlib.closing(stream()) as chunks:
            verdict = clamd.scan_stream(chunks)
    except ObjectNotFound:  # deleted meanwhile (else storage lost it: logged, left due)
        log.warning("rescan: file %s has no object to scan", item.id)
        return None
    except ClamdScanError:
        log.warning("rescan: clamd reached no verdict on file %s", item.id)
        return None
    if verdict.infected:
        return _quarantine(store, settings, actor.for_tenant(item.tenant_id), item, verdict,
                           version)
    with tenant_session(item.tenant_id) as db:
        db.execute(update(File).where(File.id == item.id, File.tenant_id == item.tenant_id)
                   .values(scanned_at=datetime.now(UTC), signature_version=version))
    return False


def quarantine_key(item: _Due) -> str:
    return f"{QUARANTINE_PREFIX}{item.tenant_id.hex}/{item.id.hex}"


def _quarantine(store: ObjectStore, settings: Settings, who: Caller, item: _Due,
                verdict: ScanResult, version: int) -> bool:
    key = quarantine_key(item)
    try:  # the copy first: the file is never taken out without its object kept
        store.copy(settings.S3_BUCKET, item.storage_key, settings.S3_QUARANTINE_BUCKET, key)
    except ObjectNotFound:
        return False  # deleted meanwhile
    signature = verdict.signature or "unknown"
    with tenant_session(item.tenant_id) as db:
        file = db.scalars(select(File).where(File.id == item.id,
                                             File.tenant_id == item.tenant_id)
                          .with_for_update()).first()
        if file is None:  # deleted, or taken out by another run, meanwhile
            kept = db.get(QuarantinedFile, item.id) is not None
        else:
            kept = True
            details = {"malware_name": signature, "clamd_db_version": version,
                       "filename": file.filename, "bucket_id": str(file.bucket_id),
                       "size": file.size, "sha256": file.sha256}
            db.add(QuarantinedFile(
                id=file.id, tenant_id=file.tenant_id, bucket_id=file.bucket_id,
                upload_id=file.upload_id, filename=file.filename,
                content_type=file.content_type, size=file.size, sha256=file.sha256,
                malware_name=signature, signature_version=version,
                storage_key=file.storage_key, quarantine_key=key))
            record(db, who, "file.quarantined", Target("file", str(file.id)), details)
            raise_alert(db, item.tenant_id, AlertType.malware_detected, Severity.critical,
                        f"Malware ({signature}) in a stored file, found by a rescan", who,
                        None, {"file_id": str(file.id), **details})
            db.delete(file)
            db.flush()  # the row goes now, and its links with it (the trigger)
    if file is None:
        if not kept:  # a user deleted it first: no record would ever name this copy
            store.delete(settings.S3_QUARANTINE_BUCKET, key)
        return False
    _remove_source(store, settings, item.tenant_id, item.id, item.storage_key)
    return True


def _remove_source(store: ObjectStore, settings: Settings, tenant_id: uuid.UUID,
                   file_id: uuid.UUID, storage_key: str) -> None:
    store.delete(settings.S3_BUCKET, storage_key)
    with tenant_session(tenant_id) as db:
        db.execute(update(QuarantinedFile)
                   .where(QuarantinedFile.id == file_id,
                          QuarantinedFile.tenant_id == tenant_id)
                   .values(source_removed_at=datetime.now(UTC)))


def _finish_moves(store: ObjectStore, settings: Settings, tenant_id: uuid.UUID | None) -> None:
    """Originals still in the files bucket after a crash, removed (their copy is kept)."""
    query = select(QuarantinedFile.tenant_id, QuarantinedFile.id, QuarantinedFile.storage_key) \
        .where(QuarantinedFile.source_removed_at.is_(None))
    if tenant_id is not None:
        query = query.where(QuarantinedFile.tenant_id == tenant_id)
    with _session(tenant_id) as db:
        pending = db.execute(query.limit(1000)).all()
    for owner, file_id, storage_key in pending:
        _remove_source(store, settings, owner, file_id, storage_key)


# --- as a job ------------------------------------------------------------------------------


def _args(tenant_id: uuid.UUID | None) -> dict[str, Any]:
    return {"tenant_id": str(tenant_id) if tenant_id else None}


def queue(tenant_id: uuid.UUID | None = None) -> uuid.UUID | None:
    """Queue a rescan job (the system's), unless one for the same files is unfinished;
    its id, or None."""
    with system_session() as db:
        if jobs.unfinished(db, JOB_KIND, _args(tenant_id)):
            return None
        return jobs.create_job(db, tenant_id=None, kind=JOB_KIND, task_name=RESCAN_TASK,
                               args=_args(tenant_id)).id


def schedule(tenant_id: uuid.UUID | None = None) -> uuid.UUID | None:
    """Beat's entry: a job when some file is due (asking clamd its version) and none is
    queued or running."""
    return queue(tenant_id) if is_due(tenant_id) else None


def run_job(args: dict[str, Any], progress: Callable[[int], None]) -> dict[str, Any]:
    """The job's body: the system rescans, within the job's time budget."""
    tenant_id = uuid.UUID(args["tenant_id"]) if args.get("tenant_id") else None

    def report(done: int, total: int) -> None:
        progress(int(99 * done / total) if total else 99)

    result = rescan(Caller.system(), tenant_id, report, budget=JOB_BUDGET_SECONDS)
    return {"clean": result.clean, "quarantined": result.quarantined,
            "unscanned": result.unscanned, "remaining": result.remaining}
