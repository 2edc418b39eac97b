"""The factories build what the services would: each product is seen through the API as if
it had been made there (a key authenticates, a file is listed and downloads, a link serves its
object, a job reads back, an event is in the trail), and ``client_for`` calls from its own
address with the member's cookies."""

from __future__ import annotations

import ipaddress

import pytest
from flask import Flask

from portcullis.accounts.models import Role, SessionState
from portcullis.audit.models import Severity
from portcullis.jobs.models import JobStatus
from portcullis.storage.models import UploadStatus
from tests.support import media
from tests.support.factories import (
    grant,
    make_access_key,
    make_bucket,
    make_export_link,
    make_file,
    make_file_link,
    make_invitation,
    make_job,
    make_member,
    make_operator_key,
    make_recovery_code,
    make_session,
    make_tenant,
    make_upload,
    record_event,
)
from tests.support.web import TEST_NET, ClientFor, csrf_headers, make_client, problem_code

pytestmark = pytest.mark.usefixtures("stack")


def test_client_for_calls_from_a_fresh_address_with_the_members_cookies(
        client_for: ClientFor) -> None:
    admin = make_session(make_member(make_tenant("Clients Co"), Role.admin))
    first, second = client_for(admin), client_for(admin)
    assert first.environ_base["REMOTE_ADDR"] != second.environ_base["REMOTE_ADDR"]
    assert all(ipaddress.ip_address(c.environ_base["REMOTE_ADDR"]) in TEST_NET
               for c in (first, second))
    me = first.get("/api/v1/auth/me")
    assert me.status_code == 200, me.get_json()
    assert me.get_json()["user"]["id"] == str(admin.member.user_id)

    anonymous = client_for(ip="192.0.2.9", user_agent="factories-test/1")
    assert anonymous.environ_base["REMOTE_ADDR"] == "192.0.2.9"
    assert anonymous.environ_base["HTTP_USER_AGENT"] == "factories-test/1"
    refused = anonymous.get("/api/v1/auth/me")
    assert refused.status_code == 401 and problem_code(refused) == "not_authenticated"


def test_an_access_key_authenticates_and_reads_its_owners_job(app: Flask) -> None:
    staff = make_session(make_member(make_tenant("Keys Factory Co"), Role.staff))
    key = make_access_key(staff, ["jobs:read"])
    job_id = make_job(staff)
    response = make_client(app).get(f"/api/v1/jobs/{job_id}", headers=key.bearer)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "queued"

    revoked = make_access_key(staff, ["jobs:read"], revoked=True)
    assert make_client(app).get(f"/api/v1/jobs/{job_id}",
                                headers=revoked.bearer).status_code == 401
    done = make_job(staff, status=JobStatus.succeeded, result={"n": 1}, progress=100)
    body = make_client(app, staff).get(f"/api/v1/jobs/{done}").get_json()
    assert body["status"] == "succeeded" and body["result"] == {"n": 1}, body


def test_an_operator_key_reads_its_own_job(app: Flask) -> None:
    key = make_operator_key()
    job_id = make_job(None, operator_key_id=key.id)
    response = make_client(app).get(f"/api/v1/jobs/{job_id}", headers=key.bearer)
    assert response.status_code == 200, response.get_json()


def test_a_bucket_a_grant_and_a_file_are_what_the_api_lists_and_serves(app: Flask) -> None:
    tenant = make_tenant("Storage Factory Co")
    admin = make_session(make_member(tenant, Role.admin))
    staff = make_session(make_member(tenant, Role.staff))
    bucket = make_bucket(admin, "factory-bucket")
    data = media.png(color=(1, 2, 3))
    stored = make_file(admin, bucket, data, filename="made.png")

    listed = make_client(app, staff).get("/api/v1/buckets").get_json()["items"]
    assert str(bucket) not in {b["id"] for b in listed}  # staff see only granted buckets
    grant(bucket, staff)
    listed = make_client(app, staff).get("/api/v1/buckets").get_json()["items"]
    assert [b["name"] for b in listed if b["id"] == str(bucket)] == ["factory-bucket"]

    files = make_client(app, staff).get(f"/api/v1/buckets/{bucket}/files").get_json()["items"]
    assert [(f["id"], f["filename"], f["size"]) for f in files] == [
        (str(stored.id), "made.png", len(data))]
    upload = make_client(app, admin).get(f"/api/v1/uploads/{stored.upload_id}").get_json()
    assert upload["status"] == "clean", upload

    client = make_client(app, admin)
    made = client.post(f"/api/v1/files/{stored.id}/links", json={"expires_in": 600},
                       headers=csrf_headers(admin))
    assert made.status_code == 201, made.get_json()
    download = make_client(app).get(made.get_json()["url"].split("portcullis.test", 1)[1])
    assert download.status_code == 200 and download.get_data() == data

    link = make_file_link(stored, created_by=admin.member.user_id)
    served = make_client(app).get(link.path)
    assert served.status_code == 200 and served.get_data() == data
    assert "made.png" in served.headers["Content-Disposition"]
    assert make_client(app).get(make_file_link(stored, revoked=True).path).status_code == 404

    pending = make_upload(admin, bucket, status=UploadStatus.rejected, reason="type_mismatch")
    body = make_client(app, admin).get(f"/api/v1/uploads/{pending}").get_json()
    assert body["status"] == "rejected" and body["reason"] == "type_mismatch", body


def test_an_export_link_serves_its_object(app: Flask) -> None:
    link = make_export_link(b"exported rows\n", filename="report.jsonl")
    response = make_client(app).get(link.path)
    assert response.status_code == 200, response.get_data()
    assert response.get_data() == b"exported rows\n"
    assert link.url.endswith(link.path)


def test_a_recorded_event_is_in_the_trail(app: Flask) -> None:
    tenant = make_tenant("Audit Factory Co")
    admin = make_session(make_member(tenant, Role.admin))
    event = record_event(tenant, "member.invited", Severity.notice, actor=("user", "u-1"),
                         target=("member", "m-1"), ip="203.0.113.5", user_agent="ua/1",
                         details={"n": 1})
    items = make_client(app, admin).get("/api/v1/audit-events",
                                        query_string={"action": "member.invited"}
                                        ).get_json()["items"]
    [item] = [i for i in items if i["id"] == str(event.id)]
    assert item["severity"] == "notice" and item["ip"] == "203.0.113.5", item
    assert item["actor"] == {"type": "user", "id": "u-1"}, item
    assert item["target"] == {"type": "member", "id": "m-1"}, item
    assert item["details"] == {"n": 1}


def test_an_invitation_is_accepted_and_a_recovery_code_passes_the_second_factor(
        app: Flask) -> None:
    admin = make_member(make_tenant("Accounts Factory Co"), Role.admin)
    email = f"invited-{admin.user_id.hex[:8]}@example.com"
    token = make_invitation(admin, email, Role.viewonly)
    accepted = make_client(app).post("/api/v1/invitations/accept", json={
        "token": token, "name": "Invited", "password": "factories passphrase 7"})
    assert accepted.status_code == 200, accepted.get_json()
    again = make_client(app).post("/api/v1/invitations/accept", json={
        "token": token, "name": "Invited", "password": "factories passphrase 7"})
    assert again.status_code in {400, 409, 410}, again.get_json()

    code = make_recovery_code(admin, "abcd-efgh-jkmn")
    pending = make_session(admin, SessionState.mfa_pending)
    verified = make_client(app, pending).post("/api/v1/auth/mfa/verify", json={"code": code},
                                              headers=csrf_headers(pending))
    assert verified.status_code == 200, verified.get_json()
