"""The scan pipeline never loses an upload and never calls one clean without a verdict: a
worker killed mid-scan leaves the upload to another worker (via the beat sweeper); with clamd
down uploads wait (pending/scanning) and complete once it is back."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from devstack.clamd import ClamdServer
from devstack.stack import LocalStack
from portcullis.accounts.models import Role
from portcullis.clients.clamd import ClamdClient
from portcullis.db import system_session
from portcullis.jobs.models import Job
from portcullis.storage.models import File
from tests.support import media
from tests.support.factories import LoggedIn, make_bucket, make_member, make_session, make_tenant
from tests.support.worker import CeleryProcess, start_worker


def _clamd_answers(clamd: ClamdServer) -> bool:
    return ClamdClient(clamd.tcp_url, timeout=2.0).ping()


def _ensure_clamd(clamd: ClamdServer) -> None:
    """Leave clamd up for the rest of the suite, whatever happened."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if _clamd_answers(clamd):
            return
        time.sleep(0.2)
    clamd.restart()


@contextmanager
def clamd_frozen(clamd: ClamdServer) -> Iterator[None]:
    """SIGSTOP clamd: connections are accepted by the kernel but never answered, so a scan
    blocks mid-way (as on a large file) until SIGCONT."""
    clamd.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        clamd.process.send_signal(signal.SIGCONT)
        _ensure_clamd(clamd)


def _job(job_id: uuid.UUID) -> Job:
    with system_session() as db:
        job = db.get(Job, job_id)
        assert job is not None
        db.expunge(job)
        return job


def _job_finished(job_id: uuid.UUID, timeout: float = 30) -> Job:
    """The upload's verdict commits a moment before its job is marked succeeded."""
    deadline = time.monotonic() + timeout
    while True:
        job = _job(job_id)
        if job.status in ("succeeded", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def _admin_bucket(app: Flask) -> tuple[LoggedIn, str]:
    admin = make_session(make_member(make_tenant("Scan reliability"), Role.admin))
    return admin, str(make_bucket(admin))


def _upload(app: Flask, admin: LoggedIn, bucket: str, data: bytes) -> str:
    client, headers = media.session_client(app, admin)
    response = media.post_upload(client, headers, bucket, "photo.png", "image/png", data)
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["id"])


def _file_count(upload_id: str) -> int:
    with system_session() as db:
        return int(db.scalar(select(func.count()).select_from(File)
                             .where(File.upload_id == uuid.UUID(upload_id))) or 0)


@pytest.mark.usefixtures("shared_worker_paused")
def test_worker_killed_mid_scan_leaves_the_upload_to_another_worker(
        app: Flask, stack: LocalStack, tmp_path: Path, beat: CeleryProcess) -> None:
    clamd = stack["clamd"]
    admin, bucket = _admin_bucket(app)
    data = media.noisy_png((64, 64))
    first = start_worker(tmp_path / "first.log", "scan-first", concurrency=1)
    try:
        with clamd_frozen(clamd):
            upload_id = _upload(app, admin, bucket, data)
            job_id = media.upload_row(upload_id).job_id
            assert job_id is not None
            deadline = time.monotonic() + 30
            while True:  # the worker is inside the scan: status scanning, job past 5%
                job, row = _job(job_id), media.upload_row(upload_id)
                if job.status == "running" and job.progress >= 5 and row.status == "scanning":
                    break
                assert time.monotonic() < deadline, (job.status, job.progress, row.status)
                time.sleep(0.05)
            time.sleep(0.5)
            assert media.upload_row(upload_id).status == "scanning"
            first.kill()
    finally:
        first.stop(timeout=5, sig=signal.SIGKILL)
    row = media.upload_row(upload_id)
    assert row.status == "scanning" and row.file_id is None  # no verdict, no file
    assert _job(job_id).status in ("running", "queued")  # unfinished: left to the sweeper

    second = start_worker(tmp_path / "second.log", "scan-second", concurrency=1)
    try:
        final = media.wait_uploads([upload_id], timeout=90)[upload_id]
        job = _job_finished(job_id)  # before stopping its worker: it records the outcome
    finally:
        second.stop(timeout=30)
    assert final.status == "clean" and final.reason is None, final
    assert _file_count(upload_id) == 1
    assert job.status == "succeeded" and job.attempts == 2, (job.status, job.attempts)
    client, _ = media.session_client(app, admin)
    listed = client.get(f"/api/v1/buckets/{bucket}/files").get_json()["items"]
    assert [f["id"] for f in listed] == [str(final.file_id)]
    assert listed[0]["size"] == len(data)


@pytest.mark.usefixtures("worker")
def test_upload_waits_while_clamd_is_down_and_completes_when_it_returns(
        app: Flask, stack: LocalStack) -> None:
    clamd = stack["clamd"]
    admin, bucket = _admin_bucket(app)
    clamd.stop()
    try:
        assert not _clamd_answers(clamd)
        upload_id = _upload(app, admin, bucket, media.png(color=(7, 7, 7)))
        job_id = media.upload_row(upload_id).job_id
        assert job_id is not None
        seen: set[str] = set()
        tried_at: float | None = None
        deadline = time.monotonic() + 45
        # Until the worker has tried (and failed to reach clamd) and 4 s more, the upload
        # is only ever pending or scanning.
        while tried_at is None or time.monotonic() < tried_at + 4:
            seen.add(media.upload_row(upload_id).status)
            if tried_at is None and _job(job_id).attempts >= 1:
                tried_at = time.monotonic()
            assert time.monotonic() < deadline, ("no worker tried the scan", seen)
            time.sleep(0.1)
        job = _job(job_id)
        state = (seen, job.status, job.attempts, job.error)
        assert seen <= {"pending", "scanning"}, state
        assert media.upload_row(upload_id).status == "scanning", state  # begun, undecided
        client, _ = media.session_client(app, admin)
        verdict = client.get(f"/api/v1/uploads/{upload_id}").get_json()
        assert verdict["status"] in ("pending", "scanning") and verdict["file_id"] is None
        assert _file_count(upload_id) == 0
        job = _job(job_id)
        assert job.status in ("queued", "running"), (job.status, job.error)
    finally:
        clamd.start()
        _ensure_clamd(clamd)
    final = media.wait_uploads([upload_id], timeout=90)[upload_id]
    job = _job_finished(job_id)
    assert final.status == "clean", (final, job.status, job.error)
    assert _file_count(upload_id) == 1
    assert job.status == "succeeded" and job.attempts >= 2, (job.status, job.attempts)


@pytest.mark.usefixtures("shared_worker_paused")
def test_a_scan_that_fails_for_good_rejects_the_upload(app: Flask, stack: LocalStack,
                                                       tmp_path: Path) -> None:
    """The quarantined object is lost before the scan: the job fails (an unexpected error,
    never retried), and the upload must not wait in ``scanning`` forever."""
    from config import get_settings
    from portcullis.clients.object_store import ObjectStore

    admin, bucket = _admin_bucket(app)
    upload_id = _upload(app, admin, bucket, media.noisy_png((32, 32)))
    row = media.upload_row(upload_id)
    settings = get_settings()
    ObjectStore.from_settings(settings).delete(settings.S3_QUARANTINE_BUCKET,
                                               row.quarantine_key)
    worker = start_worker(tmp_path / "fails.log", "scan-fails", concurrency=1)
    try:
        settled = media.wait_uploads([upload_id], timeout=60)[upload_id]
    finally:
        worker.stop(timeout=10)
    assert (settled.status, settled.reason, settled.file_id) == ("rejected", "scan_failed", None)
    assert row.job_id is not None
    job = _job_finished(row.job_id)
    assert job.status == "failed" and job.error["code"] == "internal_error"
    client, _ = media.session_client(app, admin)
    events = client.get("/api/v1/audit-events",
                        query_string={"action": "upload.rejected"}).get_json()["items"]
    assert [e["details"]["reason"] for e in events
            if e["target"]["id"] == upload_id] == ["scan_failed"]


@pytest.mark.usefixtures("shared_worker_paused")
def test_a_scan_whose_workers_keep_dying_rejects_the_upload(app: Flask) -> None:
    """The sweeper gives up a job whose workers died JOB_MAX_ATTEMPTS times: same outcome."""
    import portcullis.storage.scan  # noqa: F401 - registers the give-up handler, as workers do
    from config import get_settings
    from portcullis.jobs.service import requeue_stuck

    admin, bucket = _admin_bucket(app)
    upload_id = _upload(app, admin, bucket, media.noisy_png((32, 32)))
    row = media.upload_row(upload_id)
    assert row.job_id is not None
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with system_session() as db:  # as the last worker left it: running, lease long expired
        db.execute(update(Job).where(Job.id == row.job_id).values(
            status="running", attempts=get_settings().JOB_MAX_ATTEMPTS, heartbeat_at=long_ago))
    requeue_stuck(limit=100_000)  # the whole suite's leftovers must not crowd this job out
    job = _job(row.job_id)
    assert job.status == "failed" and job.error["code"] == "worker_lost"
    settled = media.upload_row(upload_id)
    assert (settled.status, settled.reason, settled.file_id) == ("rejected", "scan_failed", None)
