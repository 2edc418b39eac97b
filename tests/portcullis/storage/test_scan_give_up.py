"""A scan given up (``scan_failed``) settles the upload, and a worker that finishes late can't
undo it: no file row, no orphan object in the files bucket; only a malware verdict still
counts. Runs the scan in this process with the shared worker paused."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import update

from config import get_settings
from portcullis.accounts.models import Role
from portcullis.clients.clamd import ClamdClient
from portcullis.clients.object_store import ObjectStore
from portcullis.db import system_session
from portcullis.jobs.models import Job
from portcullis.storage import scan
from tests.support import media
from tests.support.factories import make_bucket, make_member, make_session, make_tenant

pytestmark = pytest.mark.usefixtures("shared_worker_paused")


def _upload(app: Flask, data: bytes) -> tuple[uuid.UUID, uuid.UUID]:
    tenant = make_tenant("Give up Co")
    admin = make_session(make_member(tenant, Role.admin))
    client, headers = media.session_client(app, admin)
    bucket = str(make_bucket(admin))
    response = media.post_upload(client, headers, bucket, "x.png", "image/png", data)
    assert response.status_code == 202, response.get_json()
    return tenant, uuid.UUID(response.get_json()["id"])


def _given_up_during(monkeypatch: pytest.MonkeyPatch, owner: type, method: str,
                     tenant: uuid.UUID, upload_id: uuid.UUID) -> None:
    """The job is given up (say its lease ran out) while this worker is inside ``method``."""
    original = getattr(owner, method)

    def late(self: Any, *args: Any, **kwargs: Any) -> Any:
        outcome = original(self, *args, **kwargs)
        scan.scan_gave_up(tenant, {"upload_id": str(upload_id)})
        assert media.upload_row(upload_id).reason == "scan_failed"
        return outcome

    monkeypatch.setattr(owner, method, late)


@pytest.mark.parametrize(("owner", "method"), [(ClamdClient, "scan_stream"),
                                               (ObjectStore, "copy")],
                         ids=["during-the-scan", "after-the-copy"])
def test_a_late_clean_verdict_leaves_no_file_and_no_object(
        app: Flask, monkeypatch: pytest.MonkeyPatch, owner: type, method: str) -> None:
    tenant, upload_id = _upload(app, media.noisy_png())
    _given_up_during(monkeypatch, owner, method, tenant, upload_id)

    result = scan.scan_upload(tenant, upload_id, lambda _p: None)  # the late worker

    row = media.upload_row(upload_id)
    assert (result["status"], row.status, row.reason, row.file_id) == \
        ("rejected", "rejected", "scan_failed", None)
    settings = get_settings()
    store = ObjectStore.from_settings(settings)
    assert row.file_key is not None
    assert store.head(settings.S3_BUCKET, row.file_key) is None


def test_a_late_malware_verdict_still_counts(app: Flask,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    tenant, upload_id = _upload(app, media.eicar_png())
    _given_up_during(monkeypatch, ClamdClient, "scan_stream", tenant, upload_id)
    scan.scan_upload(tenant, upload_id, lambda _p: None)
    row = media.upload_row(upload_id)
    assert (row.status, row.reason) == ("infected", "malware")


def test_the_sweep_settles_uploads_whose_failed_job_was_never_settled(app: Flask) -> None:
    _, upload_id = _upload(app, media.noisy_png())
    row = media.upload_row(upload_id)
    with system_session() as db:  # failed without its handler having run
        db.execute(update(Job).where(Job.id == row.job_id).values(status="failed"))
    assert media.upload_row(upload_id).status == "pending"
    assert scan.settle_failed_scans() >= 1
    assert (media.upload_row(upload_id).status, media.upload_row(upload_id).reason) == \
        ("rejected", "scan_failed")
