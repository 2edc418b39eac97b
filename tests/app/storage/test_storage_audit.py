"""Bucket, link and file changes land in the tenant's audit chain with actor and origin."""

from __future__ import annotations

import io
import time
import uuid

import pytest
from flask import Flask
from PIL import Image
from sqlalchemy import select

from portcullis.accounts.models import Role
from portcullis.audit.models import AuditEvent
from portcullis.db import system_session
from tests.support.factories import make_member, make_session, make_tenant
from tests.support.web import csrf_headers, make_client

pytestmark = pytest.mark.usefixtures("worker")
UA = "storage-audit-test/1.0"
IP = "203.0.113.77"


def _events(tenant: uuid.UUID) -> dict[str, AuditEvent]:
    with system_session() as db:
        rows = db.scalars(select(AuditEvent).where(AuditEvent.tenant_id == tenant)
                          .order_by(AuditEvent.seq)).all()
    return {e.action: e for e in rows}


def test_storage_actions_are_audited(app: Flask) -> None:
    tenant = make_tenant()
    admin = make_session(make_member(tenant, Role.admin))
    staff = make_member(tenant, Role.staff)
    client = make_client(app, admin, ip=IP, user_agent=UA)

    def call(method: str, path: str, **kwargs: object) -> object:
        return getattr(client, method)(path, headers=csrf_headers(admin), **kwargs)

    bucket = call("post", "/api/v1/buckets", json={"name": f"audit-{uuid.uuid4().hex[:6]}"})
    bucket_id = bucket.get_json()["id"]  # type: ignore[attr-defined]
    call("put", f"/api/v1/buckets/{bucket_id}/permissions/{staff.membership_id}",
         json={"read": True, "write": True, "delete": False})
    call("put", f"/api/v1/buckets/{bucket_id}/lifecycle", json={"expire_after_days": 30})

    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, "PNG")
    upload = call("post", f"/api/v1/buckets/{bucket_id}/uploads",
                  data={"file": (io.BytesIO(png.getvalue()), "a.png", "image/png")},
                  content_type="multipart/form-data")
    upload_id = upload.get_json()["id"]  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while (state := call("get", f"/api/v1/uploads/{upload_id}").get_json())["status"] != "clean":  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    file_id = state["file_id"]
    link = call("post", f"/api/v1/files/{file_id}/links", json={"expires_in": 600})
    call("delete", f"/api/v1/links/{link.get_json()['id']}")  # type: ignore[attr-defined]
    assert call("delete", f"/api/v1/files/{file_id}").status_code == 204  # type: ignore[attr-defined]
    assert call("delete", f"/api/v1/buckets/{bucket_id}").status_code == 204  # type: ignore[attr-defined]

    events = _events(tenant)
    for action in ("bucket.created", "bucket.permissions_changed", "bucket.lifecycle_changed",
                   "upload.clean", "link.created", "link.revoked", "file.deleted",
                   "bucket.deleted"):
        assert action in events, action
    for action in ("bucket.created", "bucket.permissions_changed", "bucket.lifecycle_changed",
                   "link.created", "link.revoked", "file.deleted", "bucket.deleted"):
        event = events[action]
        assert event.actor_type == "user" and event.actor_id == str(admin.member.user_id)
        assert str(event.ip) == IP and event.user_agent == UA, action
    assert events["bucket.permissions_changed"].details["member_id"] == str(staff.membership_id)
    assert events["bucket.lifecycle_changed"].details["expire_after_days"] == 30
    assert events["file.deleted"].target_id == file_id
    assert events["upload.clean"].actor_id == str(admin.member.user_id)
