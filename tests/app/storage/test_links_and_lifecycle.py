"""Share links (what their URLs reveal, what GET /s/{token} serves, expiry, revocation,
bounds, egress counting), the lifecycle sweep, and the mass-deletion alert."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from config import get_settings
from devstack.stack import LocalStack
from portcullis.accounts.models import Role
from portcullis.alerts.models import Alert
from portcullis.audit.models import AuditEvent
from portcullis.db import system_session
from portcullis.links.models import ShareLink
from portcullis.storage import files as storage_files
from portcullis.storage.models import Bucket, EgressDaily, File
from tests.support import media
from tests.support.factories import LoggedIn, make_member, make_session, make_tenant
from tests.support.web import make_client

pytestmark = pytest.mark.usefixtures("worker")

NON_ASCII_NAME = "Relatório \u2013 été 日本 \"quoted\"; x.png"


@dataclass
class Shared:
    tenant_id: uuid.UUID
    admin: LoggedIn
    bucket: str
    file_id: str
    data: bytes
    storage_key: str


def _path(url: str) -> str:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == "http://portcullis.test"
    return parts.path


@pytest.fixture(scope="module")
def shared(app: Flask, worker: object) -> Shared:
    tenant = make_tenant("Links")
    admin = make_session(make_member(tenant, Role.admin))
    client, headers = media.session_client(app, admin)
    bucket = media.create_bucket(client, headers, "links")
    data = media.noisy_png((40, 40))
    verdict = media.upload_and_wait(client, headers, bucket, NON_ASCII_NAME, "image/png", data)
    assert verdict["status"] == "clean", verdict
    row = media.file_row(verdict["file_id"])
    assert row is not None
    return Shared(tenant, admin, bucket, verdict["file_id"], data, row.storage_key)


def _link(app: Flask, who: LoggedIn, file_id: str, **body: object) -> dict:
    client, headers = media.session_client(app, who)
    response = client.post(f"/api/v1/files/{file_id}/links", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


# -- links -----------------------------------------------------------------------------------

def test_link_url_reveals_nothing_about_storage(app: Flask, shared: Shared) -> None:
    link = _link(app, shared.admin, shared.file_id)
    url = link["url"]
    assert url.endswith(f"/s/{link['token']}")  # the token field is the url's own token
    settings = get_settings()
    with system_session() as db:
        bucket_name = db.scalar(select(Bucket.name).where(
            Bucket.id == uuid.UUID(shared.bucket)))
    assert bucket_name
    forbidden = [shared.bucket, shared.bucket.replace("-", ""), shared.file_id,
                 shared.file_id.replace("-", ""), shared.storage_key,
                 shared.storage_key.split("/")[-1], settings.S3_BUCKET,
                 settings.S3_QUARANTINE_BUCKET, str(bucket_name), link["id"]]
    for secret in forbidden:
        assert secret not in url, secret
    token = _path(url).removeprefix("/s/")
    assert _path(url) == f"/s/{token}" and len(token) >= 32 and "/" not in token


def test_download_headers(app: Flask, shared: Shared) -> None:
    link = _link(app, shared.admin, shared.file_id, expires_in=600)
    response = make_client(app).get(_path(link["url"]))
    assert response.status_code == 200
    assert response.data == shared.data
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert int(response.headers["Content-Length"]) == len(shared.data)
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert f"filename*=UTF-8''{quote(NON_ASCII_NAME, safe='')}" in disposition
    fallback = disposition.split('filename="', 1)[1].split('"', 1)[0]
    assert fallback.isascii() and '"' not in fallback and ";" not in fallback
    assert fallback.endswith(".png")
    disposition.encode("latin-1")  # a header value a client can parse
    assert "no-store" in response.headers.get("Cache-Control", "")


def test_expired_link_is_gone(app: Flask, shared: Shared) -> None:
    link = _link(app, shared.admin, shared.file_id)
    with system_session() as db:
        db.execute(update(ShareLink).where(ShareLink.id == uuid.UUID(link["id"]))
                   .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    response = make_client(app).get(_path(link["url"]))
    assert response.status_code == 410
    assert response.get_json()["code"] == "link_expired"
    assert shared.data not in response.data


def test_revoked_link_is_not_found(app: Flask, shared: Shared) -> None:
    staff = make_session(make_member(shared.tenant_id, Role.staff))
    admin_client, admin_headers = media.session_client(app, shared.admin)
    grant = admin_client.put(
        f"/api/v1/buckets/{shared.bucket}/permissions/{staff.member.membership_id}",
        json={"read": True, "write": False, "delete": False}, headers=admin_headers)
    assert grant.status_code == 200
    link = _link(app, staff, shared.file_id)
    public = make_client(app)
    assert public.get(_path(link["url"])).status_code == 200

    for role, status in ((Role.manager, 403), (Role.staff, 404), (Role.viewonly, 404)):
        # neither creator nor admin: a manager reads every bucket (so sees the link): 403
        someone = make_session(make_member(shared.tenant_id, role))
        client, headers = media.session_client(app, someone)
        refused = client.delete(f"/api/v1/links/{link['id']}", headers=headers)
        assert refused.status_code == status, role
    assert public.get(_path(link["url"])).status_code == 200

    client, headers = media.session_client(app, staff)
    assert client.delete(f"/api/v1/links/{link['id']}", headers=headers).status_code == 204
    gone = public.get(_path(link["url"]))
    assert gone.status_code == 404 and shared.data not in gone.data

    other = _link(app, staff, shared.file_id)
    assert admin_client.delete(f"/api/v1/links/{other['id']}",
                               headers=admin_headers).status_code == 204
    assert public.get(_path(other["url"])).status_code == 404
    assert admin_client.delete(f"/api/v1/links/{uuid.uuid4()}",
                               headers=admin_headers).status_code == 404
    with system_session() as db:
        actions = db.scalars(select(AuditEvent.action).where(
            AuditEvent.tenant_id == shared.tenant_id,
            AuditEvent.target_id.in_([link["id"], other["id"]]))).all()
    # The link was downloaded twice before its revocation (link.downloaded each time).
    assert sorted(actions) == ["link.created", "link.created", "link.downloaded",
                               "link.downloaded", "link.revoked", "link.revoked"]


def test_unknown_token_is_not_found(app: Flask) -> None:
    public = make_client(app)
    for token in ("x" * 43, "not-a-token", "%00", uuid.uuid4().hex):
        response = public.get(f"/s/{token}")
        assert response.status_code == 404, token
        assert response.mimetype == "application/problem+json"


def test_expires_in_bounds(app: Flask, shared: Shared) -> None:
    client, headers = media.session_client(app, make_session(make_member(shared.tenant_id,
                                                                         Role.admin)))
    url = f"/api/v1/files/{shared.file_id}/links"
    for bad in (59, 604801, 0, -1, "soon"):
        response = client.post(url, json={"expires_in": bad}, headers=headers)
        assert response.status_code == 400, bad
    assert client.post(url, json={"expires_in": 60, "x": 1}, headers=headers).status_code == 400
    for seconds in (60, 604800):
        before = datetime.now(UTC)
        response = client.post(url, json={"expires_in": seconds}, headers=headers)
        assert response.status_code == 201
        expires = datetime.fromisoformat(response.get_json()["expires_at"])
        assert abs((expires - before).total_seconds() - seconds) < 30
    before = datetime.now(UTC)
    for response in (client.post(url, headers=headers),
                     client.post(url, json={}, headers=headers)):
        assert response.status_code == 201, response.get_json()
        expires = datetime.fromisoformat(response.get_json()["expires_at"])
        assert abs((expires - before).total_seconds() - 3600) < 30


def _egress(tenant_id: uuid.UUID, bucket: str) -> int:
    with system_session() as db:
        return int(db.scalar(select(func.coalesce(func.sum(EgressDaily.bytes), 0)).where(
            EgressDaily.tenant_id == tenant_id,
            EgressDaily.bucket_id == uuid.UUID(bucket))) or 0)


def test_egress_is_counted_per_tenant_and_bucket(app: Flask, shared: Shared) -> None:
    client, headers = media.session_client(app, make_session(make_member(shared.tenant_id,
                                                                         Role.admin)))
    second_bucket = media.create_bucket(client, headers, "egress")
    small = media.png(color=(3, 4, 5))
    verdict = media.upload_and_wait(client, headers, second_bucket, "small.png", "image/png",
                                    small)
    assert verdict["status"] == "clean"
    before_first, before_second = (_egress(shared.tenant_id, shared.bucket),
                                   _egress(shared.tenant_id, second_bucket))
    assert before_second == 0
    public = make_client(app)
    big_link = _link(app, shared.admin, shared.file_id)
    small_link = _link(app, shared.admin, verdict["file_id"])
    for _ in range(3):
        assert public.get(_path(big_link["url"])).data == shared.data
    assert public.get(_path(small_link["url"])).data == small
    assert public.get("/s/unknown-token").status_code == 404  # counts nothing
    assert _egress(shared.tenant_id, shared.bucket) - before_first == 3 * len(shared.data)
    assert _egress(shared.tenant_id, second_bucket) == len(small)


# -- lifecycle -------------------------------------------------------------------------------

def test_lifecycle_expires_old_files(app: Flask, shared: Shared) -> None:
    admin = make_session(make_member(shared.tenant_id, Role.admin))
    client, headers = media.session_client(app, admin)
    bucket = media.create_bucket(client, headers, "lifecycle")
    old, young = media.clean_files(client, headers, bucket, 2)
    old_row = media.file_row(old)
    assert old_row is not None
    link = _link(app, admin, old)
    rule = client.put(f"/api/v1/buckets/{bucket}/lifecycle", json={"expire_after_days": 1},
                      headers=headers)
    assert rule.status_code == 200
    with system_session() as db:
        db.execute(update(File).where(File.id == uuid.UUID(old))
                   .values(created_at=datetime.now(UTC) - timedelta(days=1, minutes=5)))
        db.execute(update(File).where(File.id == uuid.UUID(young))
                   .values(created_at=datetime.now(UTC) - timedelta(hours=23)))

    assert storage_files.expire_due() >= 1

    listed = client.get(f"/api/v1/buckets/{bucket}/files").get_json()["items"]
    assert [f["id"] for f in listed] == [young]
    assert media.file_row(old) is None
    from portcullis.clients.object_store import ObjectStore

    store = ObjectStore.from_settings(get_settings())
    assert store.head(get_settings().S3_BUCKET, old_row.storage_key) is None
    assert make_client(app).get(_path(link["url"])).status_code == 404
    with system_session() as db:
        events = db.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == shared.tenant_id, AuditEvent.action == "file.deleted",
            AuditEvent.target_id == old)).all()
    assert len(events) == 1
    assert events[0].details["reason"] == "lifecycle"
    assert events[0].actor_type == "system"
    storage_files.expire_due()  # again: the young file is not due
    assert media.file_row(young) is not None


# -- mass deletion ---------------------------------------------------------------------------

@pytest.fixture
def low_mass_deletion_threshold(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setenv("ALERT_MASS_DELETIONS", "3")
    get_settings.cache_clear()
    try:
        yield 3
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_mass_deletion_raises_one_alert(app: Flask, stack: LocalStack,
                                        low_mass_deletion_threshold: int) -> None:
    tenant = make_tenant("Deleter")
    admin = make_session(make_member(tenant, Role.admin))
    client, headers = media.session_client(app, admin)
    bucket = media.create_bucket(client, headers, "mass")
    threshold = low_mass_deletion_threshold
    file_ids = media.clean_files(client, headers, bucket, 2 * threshold)

    def alerts() -> list[Alert]:
        with system_session() as db:
            rows = db.scalars(select(Alert).where(Alert.tenant_id == tenant,
                                                  Alert.type == "alert.mass_deletion")).all()
            for row in rows:
                db.expunge(row)
            return list(rows)

    for n, file_id in enumerate(file_ids, start=1):
        assert client.delete(f"/api/v1/files/{file_id}", headers=headers).status_code == 204
        assert len(alerts()) == (0 if n < threshold else 1), n
    (alert,) = alerts()
    assert alert.severity == "critical"
    assert alert.payload["actor"] == {"type": "user", "id": str(admin.member.user_id)}
    assert alert.payload["details"]["count"] == threshold

    siem = stack["siem"]
    delivered = siem.wait_for(lambda d: isinstance(d.body, dict)
                              and d.body.get("type") == "alert.mass_deletion"
                              and d.body.get("tenant_id") == str(tenant), timeout=60)
    assert delivered.verified and delivered.id == str(alert.id)
    time.sleep(1)
    assert len({d.id for d in siem.deliveries if isinstance(d.body, dict)
                and d.body.get("type") == "alert.mass_deletion"
                and d.body.get("tenant_id") == str(tenant)}) == 1
    with system_session() as db:
        reasons = db.scalars(select(AuditEvent.details["reason"].astext).where(
            AuditEvent.tenant_id == tenant, AuditEvent.action == "file.deleted")).all()
    assert sorted(reasons) == ["deleted"] * len(file_ids)
