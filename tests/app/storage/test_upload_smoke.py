"""The upload pipeline end to end: intake → quarantine → real clamd and libmagic → file."""

from __future__ import annotations

import io
import time
import uuid

import pytest
from flask import Flask
from PIL import Image

from devstack.clamd import EICAR
from portcullis.accounts.models import Role
from tests.support.factories import LoggedIn, make_member, make_session, make_tenant
from tests.support.web import make_client

pytestmark = pytest.mark.usefixtures("worker")


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


def _admin(app: Flask) -> tuple[LoggedIn, str]:
    admin = make_session(make_member(make_tenant(), Role.admin))
    client = make_client(app, admin)
    bucket = client.post("/api/v1/buckets", json={"name": f"b-{uuid.uuid4().hex[:8]}"},
                         headers={"X-CSRF-Token": admin.csrf})
    assert bucket.status_code == 201, bucket.get_json()
    return admin, bucket.get_json()["id"]


def _upload(app: Flask, who: LoggedIn, bucket: str, name: str, data: bytes,
            content_type: str) -> dict:
    client = make_client(app, who)
    response = client.post(f"/api/v1/buckets/{bucket}/uploads",
                           data={"file": (io.BytesIO(data), name, content_type)},
                           headers={"X-CSRF-Token": who.csrf},
                           content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    upload_id = response.get_json()["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/uploads/{upload_id}").get_json()
        if body["status"] in ("clean", "rejected", "infected"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"upload still {body}")


def test_clean_png_becomes_a_file_and_a_link_serves_it(app: Flask) -> None:
    admin, bucket = _admin(app)
    data = _png()
    verdict = _upload(app, admin, bucket, "../../etc/red\u202e.png", data, "image/png")
    assert verdict["status"] == "clean" and verdict["file_id"]
    client = make_client(app, admin)
    listed = client.get(f"/api/v1/buckets/{bucket}/files").get_json()["items"]
    assert [f["id"] for f in listed] == [verdict["file_id"]]
    assert listed[0]["filename"] == "red.png" and listed[0]["content_type"] == "image/png"
    link = client.post(f"/api/v1/files/{verdict['file_id']}/links", json={"expires_in": 60},
                       headers={"X-CSRF-Token": admin.csrf})
    assert link.status_code == 201
    url = link.get_json()["url"]
    assert bucket not in url and verdict["file_id"] not in url
    download = make_client(app).get(url.replace("http://portcullis.test", ""))
    assert download.status_code == 200 and download.data == data
    assert download.headers["Content-Disposition"].startswith("attachment;")


def test_eicar_in_a_png_is_infected(app: Flask) -> None:
    admin, bucket = _admin(app)
    verdict = _upload(app, admin, bucket, "x.png", EICAR, "image/png")
    assert verdict == {**verdict, "status": "infected", "reason": "malware", "file_id": None}


def test_html_named_png_is_a_type_mismatch(app: Flask) -> None:
    admin, bucket = _admin(app)
    verdict = _upload(app, admin, bucket, "x.png", b"<html><script>alert(1)</script></html>",
                      "image/png")
    assert verdict["status"] == "rejected" and verdict["reason"] == "type_mismatch"


def test_a_large_binary_upload_is_accepted_and_scanned(app: Flask) -> None:
    """Random binary bytes hold CR/LF everywhere: the multipart reader must not choke."""
    import os
    import wave

    admin, bucket = _admin(app)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(22050)
        out.writeframes(os.urandom(3 * 1024 * 1024))
    verdict = _upload(app, admin, bucket, "noise.wav", buffer.getvalue(), "audio/wav")
    assert verdict["status"] == "clean", verdict
