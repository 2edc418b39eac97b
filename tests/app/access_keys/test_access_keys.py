"""Access keys: strong, shown once, stored as a SHA-256 digest, used and revoked at once;
operator keys from the CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select, text, update

from devstack.stack import LocalStack
from portcullis.access_keys.models import AccessKey, OperatorKey
from portcullis.accounts.models import Membership, Role
from portcullis.audit.models import AuditEvent
from portcullis.cli import main
from portcullis.db import system_session, tenant_session
from tests.support.factories import LoggedIn, make_job, make_member, make_session, make_tenant
from tests.support.web import make_client

FIRST_IP = "198.51.100.33"
SECOND_IP = "203.0.113.77"
AGENT = "keys-test/1.0"
KEY_FIELDS = {"id", "name", "prefix", "scopes", "created_at", "expires_at", "last_used_at",
              "last_used_ip", "revoked_at"}
ALL_SCOPES = ["buckets:read", "buckets:write", "files:read", "files:write", "files:delete",
              "sftp:write", "billing:read", "audit:read", "jobs:read"]
KEY_SHAPE = re.compile(r"^pck_[A-Za-z0-9_-]{43,}$")


@pytest.fixture(scope="module")
def admin(stack: LocalStack) -> LoggedIn:
    tenant = make_tenant("Keys Co")
    return make_session(make_member(tenant, Role.admin))


def _create(app: Flask, who: LoggedIn, **body: object) -> tuple[int, dict]:
    payload = {"name": "ci", "scopes": ["jobs:read"], "expires_in_days": 30, **body}
    response = make_client(app, who).post("/api/v1/access-keys", json=payload,
                                          headers={"X-CSRF-Token": who.csrf})
    return response.status_code, response.get_json(force=True, silent=True) or {}


def _list(app: Flask, who: LoggedIn) -> tuple[str, dict[str, dict]]:
    response = make_client(app, who).get("/api/v1/access-keys?limit=200")
    assert response.status_code == 200, response.get_json()
    raw = response.get_data(as_text=True)
    return raw, {k["id"]: k for k in response.get_json()["items"]}


def _use(app: Flask, secret: str, job_id: uuid.UUID, ip: str = FIRST_IP) -> int:
    """GET /api/v1/jobs/{id}: a route that takes keys (scope jobs:read)."""
    response = make_client(app, ip=ip, user_agent=AGENT).get(
        f"/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {secret}"})
    return response.status_code


def _variants(secret: str) -> list[str]:
    """Every form the secret could be stored or echoed in."""
    digest = hashlib.sha256(secret.encode()).digest()
    body = secret.removeprefix("pck_").removeprefix("pco_")
    return [secret, body, digest.hex(), base64.b64encode(digest).decode(),
            base64.urlsafe_b64encode(digest).decode().rstrip("=")]


# --------------------------------------------------------------------------- creation


def test_a_new_key_is_strong_and_shown_once(app: Flask, admin: LoggedIn) -> None:
    status, body = _create(app, admin, name="deploy bot",
                           scopes=["files:read", "buckets:read", "files:read"])
    assert status == 201, body
    secret = body["key"]
    assert KEY_SHAPE.match(secret), secret
    random_part = secret.removeprefix("pck_")
    assert len(random_part) >= 43  # 43 base64url characters carry 258 bits
    assert len(base64.urlsafe_b64decode(random_part + "=" * (-len(random_part) % 4))) >= 32
    assert set(body) == KEY_FIELDS | {"key"}
    assert body["name"] == "deploy bot"
    assert sorted(body["scopes"]) == ["buckets:read", "files:read"]
    assert secret.startswith(body["prefix"]) and 4 < len(body["prefix"]) <= 16
    assert body["last_used_at"] is None and body["last_used_ip"] is None
    assert body["revoked_at"] is None

    raw, listed = _list(app, admin)
    for form in _variants(secret):
        assert form not in raw, "the list leaks the key or its hash"
    item = listed[body["id"]]
    assert set(item) == KEY_FIELDS
    assert {k: v for k, v in body.items() if k != "key"} == item

    again = _create(app, admin, name="deploy bot")[1]["key"]
    assert again != secret


def test_only_a_sha256_digest_is_stored(app: Flask, admin: LoggedIn) -> None:
    status, body = _create(app, admin, name="stored")
    assert status == 201, body
    secret = body["key"]
    with system_session() as db:
        key = db.get(AccessKey, uuid.UUID(body["id"]))
        assert key is not None
        assert bytes(key.key_hash) == hashlib.sha256(secret.encode()).digest()
        row = db.execute(text("SELECT row_to_json(k)::text FROM access_keys k WHERE id = :id"),
                         {"id": body["id"]}).scalar_one()
    random_part = secret.removeprefix("pck_")
    assert random_part not in row
    assert random_part[:20] not in row  # not even a long piece of it
    assert secret not in row
    # Nothing else anywhere in the database holds it either (jobs, audit events...).
    with system_session() as db:
        for table in ("jobs", "audit_events"):
            hits = db.execute(text(f"SELECT count(*) FROM {table} t "  # noqa: S608
                                   "WHERE row_to_json(t)::text LIKE :needle"),
                              {"needle": f"%{random_part[:20]}%"}).scalar_one()
            assert hits == 0, table


@pytest.mark.parametrize("days", [1, 365])
def test_expiry_follows_expires_in_days(app: Flask, admin: LoggedIn, days: int) -> None:
    before = datetime.now(UTC)
    status, body = _create(app, admin, expires_in_days=days)
    assert status == 201, body
    expires = datetime.fromisoformat(body["expires_at"])
    created = datetime.fromisoformat(body["created_at"])
    assert expires.utcoffset() == timedelta(0)
    assert before + timedelta(days=days) - timedelta(seconds=5) <= expires
    assert expires <= datetime.now(UTC) + timedelta(days=days) + timedelta(seconds=5)
    assert abs(expires - created - timedelta(days=days)) < timedelta(seconds=5)


@pytest.mark.parametrize("body", [
    {"expires_in_days": 0},
    {"expires_in_days": 366},
    {"expires_in_days": -1},
    {"expires_in_days": "thirty"},
    {"scopes": ["files:read", "root"]},
    {"scopes": ["admin"]},
    {"scopes": []},
    {"scopes": "files:read"},
    {"name": ""},
    {"name": "x" * 101},
    {"owner": "someone"},
    {"key": "pck_" + "a" * 43},
], ids=["days-0", "days-366", "days-negative", "days-text", "unknown-scope", "admin-scope",
        "no-scope", "scope-string", "empty-name", "long-name", "unknown-field",
        "chosen-key"])
def test_bad_requests_are_400(app: Flask, admin: LoggedIn, body: dict) -> None:
    _, before = _list(app, admin)
    status, problem = _create(app, admin, **body)
    assert status == 400, problem
    assert problem["code"] == "validation_error"
    assert problem.get("errors")
    _, after = _list(app, admin)
    assert set(after) == set(before)


def test_missing_fields_are_400(app: Flask, admin: LoggedIn) -> None:
    for missing in ("name", "scopes", "expires_in_days"):
        body = {"name": "ci", "scopes": ["jobs:read"], "expires_in_days": 30}
        del body[missing]
        response = make_client(app, admin).post("/api/v1/access-keys", json=body,
                                                headers={"X-CSRF-Token": admin.csrf})
        assert response.status_code == 400, response.get_json()
        locs = [e["loc"] for e in response.get_json()["errors"]]
        assert ["body", missing] in locs


# --------------------------------------------------------------------------- use


def test_use_records_time_and_address_and_a_new_ip_is_audited(app: Flask,
                                                              admin: LoggedIn) -> None:
    status, body = _create(app, admin, name="used", scopes=list(ALL_SCOPES))
    assert status == 201, body
    secret, key_id = body["key"], body["id"]
    job_id = make_job(admin)

    before = datetime.now(UTC)
    assert _use(app, secret, job_id) == 200
    item = _list(app, admin)[1][key_id]
    assert item["last_used_ip"] == FIRST_IP
    assert before - timedelta(seconds=2) <= datetime.fromisoformat(item["last_used_at"])
    assert _new_ip_events(key_id) == []

    assert _use(app, secret, job_id) == 200  # same address again: nothing to report
    assert _new_ip_events(key_id) == []

    assert _use(app, secret, job_id, ip=SECOND_IP) == 200
    item = _list(app, admin)[1][key_id]
    assert item["last_used_ip"] == SECOND_IP
    events = _new_ip_events(key_id)
    assert len(events) == 1
    event = events[0]
    assert event.tenant_id == admin.member.tenant_id
    assert str(event.ip) == SECOND_IP
    assert event.user_agent == AGENT
    assert event.details.get("previous_ip") == FIRST_IP
    assert event.actor_type == "access_key" and event.actor_id == key_id
    assert event.target_type == "access_key" and event.target_id == key_id
    for form in _variants(secret):
        assert form not in json.dumps(event.details)


def _new_ip_events(key_id: str) -> list[AuditEvent]:
    with system_session() as db:
        return list(db.scalars(select(AuditEvent).where(
            AuditEvent.action == "access_key.used_from_new_ip",
            AuditEvent.target_id == key_id).order_by(AuditEvent.seq)))


def test_a_key_acts_only_within_its_scopes(app: Flask, admin: LoggedIn) -> None:
    status, body = _create(app, admin, name="narrow", scopes=["files:read"])
    assert status == 201, body
    response = make_client(app).get(f"/api/v1/jobs/{make_job(admin)}",
                                    headers={"Authorization": f"Bearer {body['key']}"})
    assert response.status_code == 403
    assert response.get_json()["code"] == "insufficient_scope"


def test_revocation_stops_the_key_at_once(app: Flask, admin: LoggedIn) -> None:
    status, body = _create(app, admin, name="doomed")
    assert status == 201, body
    job_id = make_job(admin)
    assert _use(app, body["key"], job_id) == 200
    revoke = make_client(app, admin).delete(f"/api/v1/access-keys/{body['id']}",
                                            headers={"X-CSRF-Token": admin.csrf})
    assert revoke.status_code == 204
    assert revoke.get_data() == b""
    assert _use(app, body["key"], job_id) == 401
    item = _list(app, admin)[1][body["id"]]
    revoked_at = datetime.fromisoformat(item["revoked_at"])
    assert datetime.now(UTC) - revoked_at < timedelta(minutes=1)
    with system_session() as db:
        assert db.scalar(select(AuditEvent.id).where(
            AuditEvent.action == "access_key.revoked", AuditEvent.target_id == body["id"]))
    unknown = make_client(app, admin).delete(f"/api/v1/access-keys/{uuid.uuid4()}",
                                             headers={"X-CSRF-Token": admin.csrf})
    assert unknown.status_code == 404 and unknown.get_json()["code"] == "not_found"


def test_an_expired_key_fails(app: Flask, admin: LoggedIn) -> None:
    status, body = _create(app, admin, name="old", expires_in_days=1)
    assert status == 201, body
    job_id = make_job(admin)
    assert _use(app, body["key"], job_id) == 200
    with system_session() as db:
        db.execute(update(AccessKey).where(AccessKey.id == uuid.UUID(body["id"]))
                   .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert _use(app, body["key"], job_id) == 401


def test_a_key_acts_with_its_creators_current_role(app: Flask) -> None:
    tenant = make_tenant("Demoted Keys Co")
    make_member(tenant, Role.admin)
    creator = make_session(make_member(tenant, Role.admin))
    status, body = _create(app, creator, name="creator's", scopes=["jobs:read"])
    assert status == 201, body
    other = make_session(make_member(tenant, Role.staff))
    foreign_job = make_job(other)
    assert _use(app, body["key"], foreign_job) == 200  # an admin reads any job
    with tenant_session(tenant) as db:
        db.execute(update(Membership).where(Membership.id == creator.member.membership_id)
                   .values(role=Role.staff.value))
    assert _use(app, body["key"], foreign_job) == 404  # staff reads only their own


# --------------------------------------------------------------------------- operator keys


def test_operator_key_from_the_cli(stack: LocalStack) -> None:
    name = f"ops-{uuid.uuid4().hex[:8]}"
    result = CliRunner().invoke(main, ["operator-keys", "create", "--name", name])
    assert result.exit_code == 0, result.output
    lines = result.output.rstrip("\n").split("\n")
    secret = lines[-1]
    assert re.fullmatch(r"pco_[A-Za-z0-9_-]{43,}", secret), result.output
    assert secret not in "\n".join(lines[:-1]), "printed more than once"

    with system_session() as db:
        key = db.scalars(select(OperatorKey).where(OperatorKey.name == name)).one()
        assert bytes(key.key_hash) == hashlib.sha256(secret.encode()).digest()
        row = db.execute(text("SELECT row_to_json(k)::text FROM operator_keys k "
                              "WHERE id = :id"), {"id": key.id}).scalar_one()
        events = list(db.scalars(select(AuditEvent).where(
            AuditEvent.action == "operator_key.created",
            AuditEvent.target_id == str(key.id))))
    assert secret.removeprefix("pco_") not in row
    assert len(events) == 1
    event = events[0]
    assert event.tenant_id is None
    assert event.target_type == "operator_key"
    assert event.details.get("name") == name
    for form in _variants(secret):
        assert form not in json.dumps(event.details)
