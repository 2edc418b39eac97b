"""Rescans on a real worker (the ``scan`` queue): beat's entry queues a job when files are due,
the job rescans them with progress and quarantines what the real clamd now calls infected;
with clamd down the job waits and retries, and nothing is lost. The upload pipeline records
each new file's scan.

Beat's task takes an optional tenant id (beat sends none) so that these runs stay within
their own tenant's files.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select, update

from beat_schedule import beat_schedule
from config import get_settings
from devstack.clamd import MARKER_SIGNATURE, ClamdServer
from devstack.stack import LocalStack
from portcullis.accounts.models import Role
from portcullis.clients.clamd import ClamdClient
from portcullis.db import system_session
from portcullis.jobs.models import Job, JobStatus
from portcullis.jobs.queue import producer
from portcullis.storage import service as storage
from portcullis.storage.models import File, QuarantinedFile
from tests.support import media
from tests.support.factories import (
    LoggedIn,
    make_bucket,
    make_file,
    make_job,
    make_member,
    make_session,
    make_tenant,
)
from tests.support.worker import eventually

pytestmark = pytest.mark.usefixtures("worker")



def _admin() -> tuple[LoggedIn, uuid.UUID]:
    admin = make_session(make_member(make_tenant("Rescan task Co"), Role.admin))
    return admin, make_bucket(admin)


def _jobs(tenant_id: uuid.UUID) -> list[Job]:
    with system_session() as db:
        found = list(db.scalars(select(Job).where(
            Job.kind == "files.rescan", Job.args == {"tenant_id": str(tenant_id)})
            .order_by(Job.created_at)))
        db.expunge_all()
        return found


def _finished(job_id: uuid.UUID) -> Job | None:
    with system_session() as db:
        job = db.get(Job, job_id)
        assert job is not None
        db.expunge(job)
        return job if job.status in ("succeeded", "failed") else None


def _file(file_id: uuid.UUID) -> File | None:
    with system_session() as db:
        row = db.get(File, file_id)
        if row is not None:
            db.expunge(row)
        return row


def _quarantined(file_id: uuid.UUID) -> bool:
    with system_session() as db:
        return db.get(QuarantinedFile, file_id) is not None


def test_beat_asks_hourly_for_a_rescan() -> None:
    entry = beat_schedule(get_settings())["rescan-files"]
    assert entry["task"] == "tasks.scan.schedule_rescan"
    assert entry["schedule"] == 3600.0 and entry["options"]["expires"] <= 3600


def test_a_new_files_scan_is_recorded(app: Flask) -> None:
    admin, bucket = _admin()
    client, headers = media.session_client(app, admin)
    began = datetime.now(UTC)
    response = media.post_upload(client, headers, str(bucket), "photo.png", "image/png",
                                 media.png(color=(5, 5, 5)))
    assert response.status_code == 202, response.get_json()
    upload = media.wait_uploads([response.get_json()["id"]])[response.get_json()["id"]]
    assert upload.status == "clean" and upload.file_id is not None
    row = _file(upload.file_id)
    assert row is not None and began < row.scanned_at <= datetime.now(UTC)
    assert row.signature_version == ClamdClient.from_settings(get_settings()).signature_version()


def test_beats_entry_queues_a_job_that_rescans_and_quarantines_with_progress() -> None:
    admin, bucket = _admin()
    tenant = admin.member.tenant_id
    infected = make_file(admin, bucket, media.marker_png())
    clean = make_file(admin, bucket, media.png(color=(6, 6, 6)))
    with system_session() as db:  # scanned long ago, under clamd's own version
        db.execute(update(File).where(File.id == clean.id).values(
            scanned_at=datetime.now(UTC) - timedelta(days=40), signature_version=0))

    producer().send_task("tasks.scan.schedule_rescan", args=[str(tenant)], ignore_result=True)

    [job] = eventually(lambda: _jobs(tenant), timeout=90.0)
    assert job.tenant_id is None and job.task_name == storage.RESCAN_TASK
    done = eventually(lambda: _finished(job.id), timeout=90.0)
    assert done.status == "succeeded", done.error
    assert done.progress == 100
    assert done.result == {"clean": 1, "quarantined": 1, "unscanned": 0, "remaining": 0}
    assert _file(infected.id) is None and _quarantined(infected.id)
    row = _file(clean.id)
    assert row is not None and row.scanned_at > datetime.now(UTC) - timedelta(minutes=5)

    # Nothing is due any more: beat's next run queues nothing.
    assert storage.schedule_rescan(tenant) is None
    assert [j.id for j in _jobs(tenant)] == [job.id]


@pytest.mark.parametrize("status", [JobStatus.queued, JobStatus.running])
def test_no_second_job_for_the_same_files_while_one_is_unfinished(status: JobStatus) -> None:
    tenant = make_tenant("Rescan once Co")
    make_job(None, kind="files.rescan", status=status, args={"tenant_id": str(tenant)})
    assert storage.queue_rescan(tenant) is None
    finished = make_tenant("Rescan done Co")  # its last job is done: a new one is queued
    make_job(None, kind="files.rescan", status=JobStatus.succeeded,
             args={"tenant_id": str(finished)})
    assert storage.queue_rescan(finished) is not None


def _clamd_answers(clamd: ClamdServer) -> bool:
    return ClamdClient(clamd.tcp_url, timeout=2.0).ping()


def test_with_clamd_down_the_job_retries_and_nothing_is_lost(stack: LocalStack) -> None:
    clamd: ClamdServer = stack["clamd"]
    admin, bucket = _admin()
    tenant = admin.member.tenant_id
    infected = make_file(admin, bucket, media.marker_png())
    clamd.stop()
    try:
        assert not _clamd_answers(clamd)
        job_id = storage.queue_rescan(tenant)
        assert job_id is not None

        def waiting() -> Job | None:
            with system_session() as db:
                job = db.get(Job, job_id)
                assert job is not None
                db.expunge(job)
            return job if job.attempts >= 1 and job.status == "queued" else None

        job = eventually(waiting, timeout=60)  # tried, met clamd down, back in the queue
        assert job.error is None and job.finished_at is None
        assert _file(infected.id) is not None and not _quarantined(infected.id)
    finally:
        clamd.start()
        eventually(lambda: _clamd_answers(clamd), timeout=30)
    done = eventually(lambda: _finished(job_id), timeout=120)
    assert done.status == "succeeded" and done.attempts >= 2, (done.status, done.error)
    assert done.result["quarantined"] == 1
    assert _file(infected.id) is None
    with system_session() as db:
        kept = db.get(QuarantinedFile, infected.id)
        assert kept is not None and kept.malware_name == MARKER_SIGNATURE
