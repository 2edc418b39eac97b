"""The drop box, in the domain: what an SFTP client leaves under an account's prefix
becomes an upload of the account's bucket once per object version, is scanned from where
it lies, and leaves the prefix once it has a verdict."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from config import get_settings
from portcullis.audit.models import AuditEvent
from portcullis.clients.object_store import ObjectStore
from portcullis.db import tenant_session
from portcullis.sftp import service as sftp
from portcullis.storage import service as storage
from portcullis.storage.models import File, Upload
from tests.support.factories import make_bucket, make_tenant
from tests.support.factories.billing import make_sftp_account
from tests.support.media import eicar_png, png

pytestmark = pytest.mark.usefixtures("stack")


def _drop(account_id: uuid.UUID, path: str, data: bytes) -> str:
    settings = get_settings()
    key = f"sftp/{account_id.hex}/{path}"
    ObjectStore.from_settings(settings).client.put_object(
        Bucket=settings.S3_QUARANTINE_BUCKET, Key=key, Body=data)
    return key


def _exists(key: str) -> bool:
    settings = get_settings()
    return ObjectStore.from_settings(settings).head(settings.S3_QUARANTINE_BUCKET, key) is not None


def _uploads(tenant: uuid.UUID, account_id: uuid.UUID) -> list[Upload]:
    with tenant_session(tenant) as db:
        rows = list(db.scalars(select(Upload).where(Upload.sftp_account_id == account_id)
                               .order_by(Upload.created_at)))
        db.expunge_all()
        return rows


def _scan(upload: Upload) -> dict[str, object]:
    return storage.scan_upload(upload.tenant_id, upload.id, lambda _p: None)


def _box() -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    tenant = make_tenant("Drop box Co")
    bucket = make_bucket(tenant)
    return tenant, bucket, make_sftp_account(tenant, bucket)


def test_a_clean_object_becomes_a_file_once_and_leaves_the_prefix() -> None:
    tenant, bucket, account = _box()
    key = _drop(account, "in/holiday photo.png", png())
    sftp.sweep_drop_boxes()
    sftp.sweep_drop_boxes()  # a second sweep sees the same version: nothing new
    [upload] = _uploads(tenant, account)
    assert upload.bucket_id == bucket and upload.filename == "holiday photo.png"
    assert upload.uploader_user_id is None and upload.quarantine_key == key
    assert _scan(upload)["status"] == "clean"
    assert not _exists(key)
    with tenant_session(tenant) as db:
        file = db.scalar(select(File).where(File.upload_id == upload.id))
        assert file is not None and file.bucket_id == bucket
        event = db.scalar(select(AuditEvent).where(AuditEvent.action == "upload.clean",
                                                   AuditEvent.target_id == str(upload.id)))
        assert event is not None
        assert (event.actor_type, event.actor_id) == ("sftp_account", str(account))
    sftp.sweep_drop_boxes()
    assert len(_uploads(tenant, account)) == 1


def test_an_infected_object_never_becomes_a_file() -> None:
    tenant, _bucket, account = _box()
    key = _drop(account, "eicar.png", eicar_png())
    sftp.sweep_drop_boxes()
    [upload] = _uploads(tenant, account)
    summary = _scan(upload)
    assert (summary["status"], summary["file_id"]) == ("infected", None)
    assert not _exists(key)


def test_too_large_and_unsupported_objects_are_rejected_at_once_and_removed() -> None:
    tenant, _bucket, account = _box()
    big = _drop(account, "big.png", b"\0" * (get_settings().UPLOAD_MAX_BYTES + 1))
    page = _drop(account, "page.html", b"<html></html>")
    sftp.sweep_drop_boxes()
    reasons = sorted((u.reason or "") for u in _uploads(tenant, account))
    assert reasons == ["too_large", "unsupported_type"]
    assert all(u.status == "rejected" and u.job_id is None for u in _uploads(tenant, account))
    assert not _exists(big) and not _exists(page)


def test_a_replaced_object_is_a_new_upload_and_the_old_version_never_a_file() -> None:
    tenant, _bucket, account = _box()
    key = _drop(account, "a.png", png(color=(1, 2, 3)))
    sftp.sweep_drop_boxes()
    [first] = _uploads(tenant, account)
    _drop(account, "a.png", png(color=(9, 9, 9)))  # the client overwrote it meanwhile
    assert _scan(first)["status"] == "rejected"
    assert _uploads(tenant, account)[0].reason == "superseded"
    assert _exists(key)  # the newer version stays for its own upload
    sftp.sweep_drop_boxes()
    second = _uploads(tenant, account)[1]
    assert _scan(second)["status"] == "clean"
    assert not _exists(key)
