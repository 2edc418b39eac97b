"""Stored files scanned again (``storage.rescan_files``, what the CLI and the job run), against
the real clamd (the project's test signatures), moto S3 and PostgreSQL.

A file whose stored bytes carry the test marker is infected on a rescan: taken out of its
bucket (not listed, its link 404, not counted in stored usage), its object moved to the
quarantine bucket under the quarantine prefix, audited ``file.quarantined`` with the
signature, ``alert.malware_detected`` delivered to the test SIEM receiver (by the worker).

Each run is limited to the test's own tenant, so the suite's other files are left alone.
The test clamd loads unsigned signatures only and reports signature version 0; the test of
how versions compare sets the version clamd reports (``ClamdClient.signature_version``).
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select, update

from config import get_settings
from devstack.clamd import MARKER_SIGNATURE
from devstack.stack import LocalStack
from portcullis.accounts.models import Role
from portcullis.audit.models import AuditEvent
from portcullis.callers import Caller
from portcullis.clients.clamd import ClamdClient
from portcullis.clients.object_store import ObjectStore
from portcullis.db import system_session
from portcullis.storage import rescan
from portcullis.storage import service as storage
from portcullis.storage.models import File, QuarantinedFile
from tests.support import media
from tests.support.factories import (
    LoggedIn,
    StoredFile,
    make_bucket,
    make_file,
    make_file_link,
    make_member,
    make_session,
    make_tenant,
)
from tests.support.web import make_client

pytestmark = pytest.mark.usefixtures("stack")

SYSTEM = Caller.system()


def _admin() -> tuple[LoggedIn, uuid.UUID]:
    admin = make_session(make_member(make_tenant("Rescan Co"), Role.admin))
    return admin, make_bucket(admin)


def _tenant(admin: LoggedIn) -> uuid.UUID:
    return admin.member.tenant_id


def _row(file_id: uuid.UUID) -> File | None:
    with system_session() as db:
        row = db.get(File, file_id)
        if row is not None:
            db.expunge(row)
        return row


def _set_scan(file: StoredFile, *, ago: timedelta, version: int | None) -> datetime:
    at = datetime.now(UTC) - ago
    with system_session() as db:
        db.execute(update(File).where(File.id == file.id)
                   .values(scanned_at=at, signature_version=version))
    return at


def _store() -> ObjectStore:
    return ObjectStore.from_settings(get_settings())


def _object(bucket: str, key: str) -> bytes | None:
    if _store().head(bucket, key) is None:
        return None
    return b"".join(_store().open_stream(bucket, key))


def _listed(app: Flask, admin: LoggedIn, bucket: uuid.UUID) -> list[str]:
    response = make_client(app, admin).get(f"/api/v1/buckets/{bucket}/files")
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


def test_a_clean_file_rescanned_stays_and_records_the_scan(app: Flask) -> None:
    admin, bucket = _admin()
    stored = make_file(admin, bucket, media.png(color=(1, 2, 3)))
    before = _set_scan(stored, ago=timedelta(days=30), version=0)
    other_admin, other_bucket = _admin()
    elsewhere = make_file(other_admin, other_bucket, media.png(color=(3, 2, 1)))
    untouched = _set_scan(elsewhere, ago=timedelta(days=30), version=0)

    result = storage.rescan_files(SYSTEM, _tenant(admin))

    assert result == storage.Rescanned(clean=1, quarantined=0, unscanned=0, remaining=0)
    row = _row(stored.id)
    assert row is not None and row.scanned_at > before
    assert row.signature_version == ClamdClient.from_settings(get_settings()).signature_version()
    assert _listed(app, admin, bucket) == [str(stored.id)]
    assert _object(get_settings().S3_BUCKET, stored.storage_key) is not None
    other = _row(elsewhere.id)  # another tenant's due file: not this run's
    assert other is not None and other.scanned_at == untouched
    # Scanned now, under clamd's version: nothing is due any more.
    assert storage.rescan_files(SYSTEM, _tenant(admin)) == storage.Rescanned(0, 0, 0, 0)


@pytest.mark.usefixtures("worker")  # delivers the SIEM alert
def test_a_stored_file_matching_a_signature_is_quarantined(app: Flask, stack: LocalStack) -> None:
    admin, bucket = _admin()
    data = media.marker_png()
    infected = make_file(admin, bucket, data, filename="looks-fine.png")
    clean = make_file(admin, bucket, media.png(color=(9, 8, 7)))
    link = make_file_link(infected)
    assert make_client(app).get(link.path).status_code == 200  # served until the rescan
    settings = get_settings()

    result = storage.rescan_files(SYSTEM, _tenant(admin))

    assert (result.clean, result.quarantined, result.unscanned) == (1, 1, 0)
    # Taken out: not listed, its link 404, its object gone from the files bucket ...
    assert _listed(app, admin, bucket) == [str(clean.id)]
    assert make_client(app).get(link.path).status_code == 404
    assert _row(infected.id) is None
    assert _object(settings.S3_BUCKET, infected.storage_key) is None
    # ... and kept, byte for byte, in the quarantine bucket under the quarantine prefix.
    with system_session() as db:
        kept = db.get(QuarantinedFile, infected.id)
        assert kept is not None
        db.expunge(kept)
    assert kept.quarantine_key == (f"{rescan.QUARANTINE_PREFIX}{infected.tenant_id.hex}/"
                                   f"{infected.id.hex}")
    assert _object(settings.S3_QUARANTINE_BUCKET, kept.quarantine_key) == data
    assert (kept.tenant_id, kept.bucket_id, kept.malware_name, kept.sha256, kept.size) == (
        infected.tenant_id, bucket, MARKER_SIGNATURE, infected.sha256, len(data))
    assert kept.source_removed_at is not None
    # Stored usage (what billing collects) no longer counts it.
    stored = storage.stored_per_bucket().subquery()
    with system_session() as db:
        usage = db.execute(select(stored.c.bytes, stored.c.objects)
                           .where(stored.c.bucket_id == bucket)).all()
    assert [tuple(row) for row in usage] == [(clean.size, 1)]

    with system_session() as db:
        [event] = db.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == infected.tenant_id,
            AuditEvent.action == "file.quarantined")).all()
    assert (event.target_type, event.target_id) == ("file", str(infected.id))
    assert event.severity == "critical" and event.actor_type == "system"
    assert event.details["malware_name"] == MARKER_SIGNATURE
    assert event.details["clamd_db_version"] == 0  # not masked as a "signature"
    assert event.details["filename"] == "looks-fine.png"

    alert = stack["siem"].wait_for(
        lambda d: isinstance(d.body, dict) and d.body.get("type") == "alert.malware_detected"
        and d.body.get("details", {}).get("file_id") == str(infected.id), timeout=60)
    assert alert.verified and alert.body["tenant_id"] == str(infected.tenant_id)
    assert alert.body["severity"] == "critical"
    assert alert.body["details"]["malware_name"] == MARKER_SIGNATURE


def test_files_under_an_older_signature_version_go_first_then_the_oldest_scans(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With the real clamd's version (0): never recorded (None) counts as older."""
    monkeypatch.setattr(rescan, "BATCH", 1)  # the order holds across batches
    admin, bucket = _admin()
    files = {name: make_file(admin, bucket, media.png(color=(n, 50, 50)))
             for n, name in enumerate(["recent_unknown", "old_unknown", "oldest", "old",
                                       "fresh"])}
    _set_scan(files["recent_unknown"], ago=timedelta(days=1), version=None)
    _set_scan(files["old_unknown"], ago=timedelta(days=2), version=None)
    _set_scan(files["oldest"], ago=timedelta(days=30), version=0)
    _set_scan(files["old"], ago=timedelta(days=10), version=0)
    fresh = _set_scan(files["fresh"], ago=timedelta(hours=1), version=0)

    result = storage.rescan_files(SYSTEM, _tenant(admin))

    assert result == storage.Rescanned(clean=4, quarantined=0, unscanned=0, remaining=0)
    assert _processing_order(files) == ["old_unknown", "recent_unknown", "oldest", "old"]
    row = _row(files["fresh"].id)
    assert row is not None and row.scanned_at == fresh


def test_only_an_older_version_counts_and_versions_compare_as_numbers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ClamdClient, "signature_version", lambda _self: 10)
    monkeypatch.setattr(rescan, "BATCH", 1)
    admin, bucket = _admin()
    files = {name: make_file(admin, bucket, media.png(color=(n, 60, 60)))
             for n, name in enumerate(["v9", "v2", "v10_old", "v10", "v11"])}
    _set_scan(files["v9"], ago=timedelta(hours=1), version=9)
    _set_scan(files["v2"], ago=timedelta(hours=3), version=2)  # 2 < 10, though "2" > "10"
    _set_scan(files["v10_old"], ago=timedelta(days=20), version=10)
    _set_scan(files["v10"], ago=timedelta(hours=2), version=10)
    newer = _set_scan(files["v11"], ago=timedelta(hours=2), version=11)  # a newer clamd's

    storage.rescan_files(SYSTEM, _tenant(admin))

    assert _processing_order(files) == ["v2", "v9", "v10_old"]
    for name in ("v2", "v9", "v10_old"):
        row = _row(files[name].id)
        assert row is not None and row.signature_version == 10
    row = _row(files["v11"].id)
    assert row is not None and (row.scanned_at, row.signature_version) == (newer, 11)


def _processing_order(files: dict[str, StoredFile]) -> list[str]:
    """The files rescanned by the run, in the order it scanned them (each records the time
    of its own scan), those scanned in the last minute only."""
    since = datetime.now(UTC) - timedelta(minutes=1)
    rows = {name: _row(file.id) for name, file in files.items()}
    scanned = [(row.scanned_at, name) for name, row in rows.items()
               if row is not None and row.scanned_at > since
               and row.signature_version is not None]
    return [name for _, name in sorted(scanned)]


def test_files_are_taken_in_bounded_batches_with_progress(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rescan, "BATCH", 2)
    asked: list[int] = []
    real_batch = rescan._batch

    def batch(rule: rescan._Rule, skip: list[uuid.UUID], limit: int) -> list[rescan._Due]:
        asked.append(limit)
        return real_batch(rule, skip, limit)

    monkeypatch.setattr(rescan, "_batch", batch)
    admin, bucket = _admin()
    for n in range(5):
        make_file(admin, bucket, media.png(color=(n, 70, 70)))  # never versioned: due
    reports: list[tuple[int, int]] = []

    result = storage.rescan_files(SYSTEM, _tenant(admin),
                                  lambda done, total: reports.append((done, total)))

    assert result.clean == 5
    assert asked == [2, 2, 1]
    assert reports == [(0, 5), (2, 5), (4, 5), (5, 5)]


def test_a_move_a_crash_interrupted_is_finished_by_the_next_run() -> None:
    """The transaction took the file out, the original object was never deleted."""
    admin, bucket = _admin()
    data = media.marker_png()
    infected = make_file(admin, bucket, data)
    storage.rescan_files(SYSTEM, _tenant(admin))
    settings = get_settings()
    _store().put_file(settings.S3_BUCKET, infected.storage_key, io.BytesIO(data))
    with system_session() as db:
        db.execute(update(QuarantinedFile).where(QuarantinedFile.id == infected.id)
                   .values(source_removed_at=None))

    storage.rescan_files(SYSTEM, _tenant(admin))

    assert _object(settings.S3_BUCKET, infected.storage_key) is None
    with system_session() as db:
        kept = db.get(QuarantinedFile, infected.id)
        assert kept is not None and kept.source_removed_at is not None
        assert _object(settings.S3_QUARANTINE_BUCKET, kept.quarantine_key) == data

