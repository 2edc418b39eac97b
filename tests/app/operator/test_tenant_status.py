"""POST /api/v1/operator/tenants/{id}/status: an operator suspends a tenant (read-only,
audited in the tenant's own chain as the operator, alerted to the SIEM) and reactivates it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from devstack.stack import LocalStack
from portcullis import secrets_gen
from portcullis.access_keys.models import OperatorKey
from portcullis.access_keys.service import create_operator_key
from portcullis.accounts.models import Role
from portcullis.alerts.models import Alert
from portcullis.db import system_session
from tests.support.factories import LoggedIn, make_member, make_session, make_tenant
from tests.support.web import make_client

pytestmark = pytest.mark.usefixtures("worker")

OPERATOR_IP = "192.0.2.44"
ALERT_FIELDS = {"id", "type", "occurred_at", "tenant_id", "severity", "summary", "actor", "ip",
                "details"}


@pytest.fixture(scope="module")
def operator(stack: LocalStack) -> tuple[str, str]:
    secret = create_operator_key("tenant-status-tests")
    with system_session() as db:
        key_id = db.scalar(select(OperatorKey.id)
                           .where(OperatorKey.key_hash == secrets_gen.digest(secret)))
    assert key_id is not None
    return secret, str(key_id)


def _set_status(app: Flask, secret: str, tenant_id: uuid.UUID | str,
                status: Any) -> tuple[int, dict[str, Any]]:
    response = make_client(app, ip=OPERATOR_IP).post(f"/api/v1/operator/tenants/{tenant_id}/status",
                                                     headers={"Authorization": f"Bearer {secret}"},
                                                     json={"status": status})
    return response.status_code, response.get_json(force=True)


def _invite(app: Flask, admin: LoggedIn) -> tuple[int, dict[str, Any]]:
    response = make_client(app, admin, ip="198.51.100.90").post(
        "/api/v1/invitations", headers={"X-CSRF-Token": admin.csrf},
        json={"email": f"invitee-{uuid.uuid4().hex[:8]}@example.com", "role": "viewonly"})
    return response.status_code, response.get_json(force=True)


def _events(app: Flask, admin: LoggedIn, action: str) -> list[dict[str, Any]]:
    response = make_client(app, admin, ip="198.51.100.90").get(
        "/api/v1/audit-events", query_string={"action": action})
    assert response.status_code == 200, response.get_json()  # reads work while suspended
    return response.get_json()["items"]


def _alerts(tenant_id: uuid.UUID) -> list[Alert]:
    with system_session() as db:
        return list(db.scalars(select(Alert).where(Alert.tenant_id == tenant_id,
                                                   Alert.type == "alert.tenant_suspended")))


def test_suspension_is_read_only_audited_and_alerted(app: Flask, stack: LocalStack,
                                                     operator: tuple[str, str]) -> None:
    secret, key_id = operator
    tenant = make_tenant("Suspended Co")
    admin = make_session(make_member(tenant, Role.admin))
    bystander = make_session(make_member(make_tenant("Bystander Co"), Role.admin))
    assert _invite(app, admin)[0] == 201

    status, body = _set_status(app, secret, tenant, "suspended")
    assert status == 200, body
    assert body == {"id": str(tenant), "name": "Suspended Co", "status": "suspended"}

    # Writes are refused, reads still answer; other tenants are untouched.
    status, body = _invite(app, admin)
    assert status == 403 and body["code"] == "tenant_suspended"
    key = make_client(app, admin, ip="198.51.100.90").post(
        "/api/v1/access-keys", headers={"X-CSRF-Token": admin.csrf},
        json={"name": "x", "scopes": ["jobs:read"], "expires_in_days": 1})
    assert key.status_code == 403 and key.get_json()["code"] == "tenant_suspended"
    reader = make_client(app, admin, ip="198.51.100.90")
    assert reader.get("/api/v1/members").status_code == 200
    me = reader.get("/api/v1/auth/me")
    assert me.status_code == 200 and me.get_json()["tenant"]["status"] == "suspended"
    assert _invite(app, bystander)[0] == 201

    # In the tenant's own audit events, as the operator.
    [event] = _events(app, admin, "tenant.suspended")
    assert event["actor"] == {"type": "operator", "id": key_id}
    assert event["target"] == {"type": "tenant", "id": str(tenant)}
    assert event["severity"] == "critical" and event["ip"] == OPERATOR_IP
    assert secret not in str(event)

    # And at the SIEM, signed.
    [alert] = _alerts(tenant)
    delivery = stack["siem"].wait_for(lambda d: d.id == str(alert.id), timeout=30)
    assert delivery.verified and delivery.status == 204
    alert_body = delivery.body
    assert set(alert_body) == ALERT_FIELDS
    assert alert_body["type"] == "alert.tenant_suspended"
    assert alert_body["tenant_id"] == str(tenant) and alert_body["severity"] == "critical"
    assert alert_body["actor"] == {"type": "operator", "id": key_id}
    assert alert_body["ip"] == OPERATOR_IP and "Suspended Co" in alert_body["summary"]

    # Suspending again changes nothing: no second event, no second alert.
    status, body = _set_status(app, secret, tenant, "suspended")
    assert status == 200 and body["status"] == "suspended"
    assert len(_events(app, admin, "tenant.suspended")) == 1
    assert len(_alerts(tenant)) == 1

    # Reactivation opens writes again; it is audited but not alerted.
    status, body = _set_status(app, secret, tenant, "active")
    assert status == 200 and body["status"] == "active"
    assert _invite(app, admin)[0] == 201
    [back] = _events(app, admin, "tenant.reactivated")
    assert back["actor"] == {"type": "operator", "id": key_id}
    assert len(_alerts(tenant)) == 1


def test_unknown_tenant_is_404(app: Flask, operator: tuple[str, str]) -> None:
    status, body = _set_status(app, operator[0], uuid.uuid4(), "suspended")
    assert status == 404 and body["status"] == 404


@pytest.mark.parametrize("body", [{"status": "deleted"}, {"status": None}, {},
                                  {"status": "suspended", "reason": "x"}])
def test_invalid_bodies_are_400(app: Flask, operator: tuple[str, str],
                                body: dict[str, Any]) -> None:
    tenant = make_tenant("Bodies Co")
    response = make_client(app, ip=OPERATOR_IP).post(
        f"/api/v1/operator/tenants/{tenant}/status",
        headers={"Authorization": f"Bearer {operator[0]}"}, json=body)
    assert response.status_code == 400
    assert _alerts(tenant) == []


def test_only_an_operator_key_may_change_a_tenant(app: Flask, stack: LocalStack) -> None:
    tenant = make_tenant("Guarded Co")
    admin = make_session(make_member(tenant, Role.admin))
    url = f"/api/v1/operator/tenants/{tenant}/status"
    payload = {"status": "suspended"}

    by_admin = make_client(app, admin).post(url, headers={"X-CSRF-Token": admin.csrf},
                                            json=payload)
    assert by_admin.status_code == 403

    made = make_client(app, admin).post(
        "/api/v1/access-keys", headers={"X-CSRF-Token": admin.csrf},
        json={"name": "all", "scopes": ["audit:read", "jobs:read", "billing:read"],
              "expires_in_days": 1})
    assert made.status_code == 201
    by_key = make_client(app).post(url, json=payload,
                                   headers={"Authorization": f"Bearer {made.get_json()['key']}"})
    assert by_key.status_code == 403

    assert make_client(app).post(url, json=payload).status_code == 401
    forged = make_client(app).post(url, json=payload, headers={
        "Authorization": f"Bearer {secrets_gen.new_token('pco_')}"})
    assert forged.status_code == 401

    me = make_client(app, admin).get("/api/v1/auth/me").get_json()
    assert me["tenant"]["status"] == "active"
    assert _alerts(tenant) == []


def test_operator_key_is_refused_on_tenant_routes(app: Flask,
                                                  operator: tuple[str, str]) -> None:
    client = make_client(app, ip=OPERATOR_IP)
    headers = {"Authorization": f"Bearer {operator[0]}"}
    assert client.get("/api/v1/audit-events", headers=headers).status_code == 401
    assert client.post("/api/v1/invitations", headers=headers,
                       json={"email": "x@example.com", "role": "viewonly"}).status_code == 401
