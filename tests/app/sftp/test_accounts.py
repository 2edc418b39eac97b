"""/api/v1/sftp-accounts against the SFTPGo double and a real worker: an account is
provisioned with a generated password shown to its creator once (SFTPGo receives only a
bcrypt hash), rotated without touching the rest of the user, and deleted with whatever is
left under its prefix; every route holds the access rules."""

from __future__ import annotations

import io
import time
import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from config import get_settings
from devstack.stack import LocalStack
from portcullis.callers import Role
from portcullis.clients.object_store import ObjectStore
from portcullis.tenants.models import TenantStatus
from tests.support.factories import (
    make_access_key,
    make_bucket,
    make_member,
    make_session,
    make_tenant,
)
from tests.support.web import make_client

pytestmark = pytest.mark.usefixtures("worker")


def _client(app: Flask, tenant: uuid.UUID,
            role: Role = Role.manager) -> tuple[FlaskClient, dict[str, str]]:
    who = make_session(make_member(tenant, role))
    return make_client(app, who), {"X-CSRF-Token": who.csrf}


def _job(client: FlaskClient, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").get_json()
        if job["status"] in ("succeeded", "failed"):
            return dict(job)
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish")


def _create(client: FlaskClient, csrf: dict[str, str], bucket: uuid.UUID) -> dict[str, Any]:
    response = client.post("/api/v1/sftp-accounts", headers=csrf,
                           json={"bucket_id": str(bucket), "label": "scanner drop box"})
    assert response.status_code == 202, response.get_json()
    return dict(response.get_json())


def test_provision_rotate_delete(app: Flask, stack: LocalStack) -> None:
    double = stack["sftpgo"]
    tenant = make_tenant("SFTP Co")
    client, csrf = _client(app, tenant)
    bucket = make_bucket(tenant)
    created = _create(client, csrf, bucket)
    account, username = created["account"], created["account"]["username"]
    assert account["status"] == "provisioning" and username.startswith("pc-")

    job = _job(client, created["job_id"])
    assert job["status"] == "succeeded", job
    password = job["result"]["password"]
    assert len(password) >= 32 and job["result"]["username"] == username
    assert {"host", "port"} <= set(job["result"])
    assert double.received_plaintext(username) is False  # SFTPGo got only a hash
    assert double.check_password(username, password)
    user = double.users[username]
    assert user["status"] == 1
    prefix = f"sftp/{uuid.UUID(account['id']).hex}/"
    assert user["filesystem"]["s3config"]["key_prefix"] == prefix
    assert _job(client, created["job_id"])["result"]["password"] is None  # shown once
    [listed] = client.get("/api/v1/sftp-accounts").get_json()["items"]
    assert listed["status"] == "active" and listed["bucket_id"] == str(bucket)

    rotated = client.post(f"/api/v1/sftp-accounts/{account['id']}/rotate-password",
                          headers=csrf)
    assert rotated.status_code == 202
    new = _job(client, rotated.get_json()["job_id"])["result"]["password"]
    assert new != password and double.check_password(username, new)
    assert not double.check_password(username, password)
    assert double.users[username]["filesystem"] == user["filesystem"]  # the rest is kept
    assert double.s3_access_secret(username)  # the S3 secret survived the PUT

    settings = get_settings()
    ObjectStore.from_settings(settings).put_stream(settings.S3_QUARANTINE_BUCKET,
                     f"{prefix}left.txt", io.BytesIO(b"x"),
                     "text/plain")
    deleted = client.delete(f"/api/v1/sftp-accounts/{account['id']}", headers=csrf)
    assert deleted.status_code == 202
    result = _job(client, deleted.get_json()["job_id"])["result"]
    assert result["objects_removed"] == 1
    assert username not in double.users
    assert client.get("/api/v1/sftp-accounts").get_json()["items"] == []
    assert client.delete(f"/api/v1/sftp-accounts/{account['id']}",
                         headers=csrf).status_code == 404

    # Each change is audited as the member, and no password reaches the trail.
    admin = make_client(app, make_session(make_member(tenant, Role.admin)))
    for action in ("sftp_account.created", "sftp_account.password_rotated",
                   "sftp_account.deleted"):
        [event] = admin.get("/api/v1/audit-events", query_string={"action": action}
                            ).get_json()["items"]
        assert event["target"] == {"type": "sftp_account", "id": account["id"]}
        assert event["actor"]["type"] == "user"
        assert password not in str(event) and new not in str(event)


def test_another_tenants_accounts_and_buckets_are_404(app: Flask) -> None:
    tenant, other = make_tenant("SFTP Mine Co"), make_tenant("SFTP Theirs Co")
    client, csrf = _client(app, tenant)
    theirs, their_csrf = _client(app, other)
    created = _create(client, csrf, make_bucket(tenant))
    account = created["account"]["id"]
    assert theirs.post(f"/api/v1/sftp-accounts/{account}/rotate-password",
                       headers=their_csrf).status_code == 404
    assert theirs.delete(f"/api/v1/sftp-accounts/{account}",
                         headers=their_csrf).status_code == 404
    assert theirs.get("/api/v1/sftp-accounts").get_json()["items"] == []
    assert theirs.get(f"/api/v1/jobs/{created['job_id']}").status_code == 404
    foreign = theirs.post("/api/v1/sftp-accounts", headers=their_csrf,
                          json={"bucket_id": str(make_bucket(tenant)), "label": "x"})
    assert foreign.status_code == 404


@pytest.mark.parametrize("role", [Role.staff, Role.viewonly])
def test_staff_and_viewonly_are_refused(app: Flask, role: Role) -> None:
    tenant = make_tenant("SFTP Roles Co")
    client, csrf = _client(app, tenant, role)
    response = client.post("/api/v1/sftp-accounts", headers=csrf,
                           json={"bucket_id": str(make_bucket(tenant)), "label": "x"})
    assert response.status_code == 403
    assert client.get("/api/v1/sftp-accounts").status_code == 403


def test_keys_need_the_sftp_write_scope(app: Flask) -> None:
    tenant = make_tenant("SFTP Keys Co")
    manager = make_member(tenant, Role.manager)
    without = make_access_key(manager, ["buckets:read"])
    withit = make_access_key(manager, ["sftp:write"])
    client = make_client(app)
    refused = client.get("/api/v1/sftp-accounts", headers=without.bearer)
    assert refused.status_code == 403 and refused.get_json()["code"] == "insufficient_scope"
    assert client.get("/api/v1/sftp-accounts", headers=withit.bearer).status_code == 200


@pytest.mark.parametrize("body", [{}, {"bucket_id": "nope", "label": "x"},
                                  {"bucket_id": str(uuid.uuid4()), "label": ""},
                                  {"bucket_id": str(uuid.uuid4()), "label": "a\u202eb"},
                                  {"bucket_id": str(uuid.uuid4()), "label": "x",
                                   "username": "chosen"}])
def test_invalid_bodies_are_400(app: Flask, body: dict[str, Any]) -> None:
    client, csrf = _client(app, make_tenant("SFTP Bodies Co"))
    response = client.post("/api/v1/sftp-accounts", headers=csrf, json=body)
    assert response.status_code == 400, response.get_json()


def test_a_suspended_tenant_cannot_create_one(app: Flask) -> None:
    tenant = make_tenant("SFTP Suspended Co", status=TenantStatus.suspended)
    client, csrf = _client(app, tenant)
    response = client.post("/api/v1/sftp-accounts", headers=csrf,
                           json={"bucket_id": str(make_bucket(tenant)), "label": "x"})
    assert response.status_code == 403 and response.get_json()["code"] == "tenant_suspended"
    assert client.get("/api/v1/sftp-accounts").status_code == 200
