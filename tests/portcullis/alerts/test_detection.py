"""The SIEM rules fed by real causes through the API: failed logins (per account, per IP),
a new IP for a login or a key, a session used from a second IP, wrong MFA codes and an
audit export. Each alert is checked where it lands: the SIEM receiver, signature verified.
A rule fires once per identity and window, however many more events follow."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from devstack.siem_receiver import Delivery
from devstack.stack import LocalStack
from portcullis.accounts.models import Role
from portcullis.alerts.models import Alert
from portcullis.db import system_session
from portcullis.redis_client import get_redis
from tests.support.factories import Member, make_member, make_session, make_tenant
from tests.support.web import fresh_ip, log_in, make_client

pytestmark = pytest.mark.usefixtures("worker")

ALERT_FIELDS = {"id", "type", "occurred_at", "tenant_id", "severity", "summary", "actor", "ip",
                "details"}
WRONG_PASSWORD = "definitely not the password 0"


def _login(client: FlaskClient, email: str, password: str) -> tuple[int, dict[str, Any]]:
    response = log_in(client, email, password)
    return response.status_code, response.get_json(force=True)


def _fail_login(client: FlaskClient, email: str) -> None:
    status, body = _login(client, email, WRONG_PASSWORD)
    assert status == 401 and body["code"] == "invalid_credentials", body


def _forget_login_limits(ip: str) -> None:
    """Drop the login rate-limit windows of ``ip`` and of every account, as if minutes had
    passed: the limiter (10 failures/min per IP and per account) is tested elsewhere, the
    detection windows (5 minutes) are kept."""
    redis = get_redis()
    for pattern in (f"*login-ip:{ip}/*", "*login-account:*"):
        keys = list(redis.scan_iter(match=pattern, count=1000))
        if keys:
            redis.delete(*keys)


def _alerts(tenant_id: uuid.UUID | None, alert_type: str) -> list[Alert]:
    with system_session() as db:
        stmt = select(Alert).where(Alert.type == alert_type).order_by(Alert.created_at)
        stmt = stmt.where(Alert.tenant_id == tenant_id) if tenant_id else stmt
        return list(db.scalars(stmt))


def _delivered(stack: LocalStack, alert: Alert, timeout: float = 30) -> dict[str, Any]:
    """The alert as the SIEM received it, with every documented field and a good signature."""
    delivery: Delivery = stack["siem"].wait_for(lambda d: d.id == str(alert.id),
                                                timeout=timeout)
    assert delivery.verified and delivery.status == 204
    body = delivery.body
    assert isinstance(body, dict) and set(body) == ALERT_FIELDS
    assert body["id"] == str(alert.id) and body["type"] == alert.type
    assert body["tenant_id"] == (str(alert.tenant_id) if alert.tenant_id else None)
    assert body["severity"] in {"info", "notice", "warning", "critical"}
    assert isinstance(body["summary"], str) and body["summary"]
    assert body["occurred_at"].endswith("Z")
    assert set(body["actor"]) == {"type", "id"}
    return body


# --- failed logins -----------------------------------------------------------------------


def test_ten_failed_logins_for_one_account_raise_one_alert(app: Flask,
                                                          stack: LocalStack) -> None:
    tenant = make_tenant("Failed Logins Co")
    member = make_member(tenant, Role.staff)
    ip = fresh_ip()
    client = make_client(app, ip=ip)

    for _ in range(9):
        _fail_login(client, member.email)
    assert _alerts(tenant, "alert.failed_logins") == []
    _fail_login(client, member.email)  # the 10th failure is still let through, and counted
    [alert] = _alerts(tenant, "alert.failed_logins")
    body = _delivered(stack, alert)
    assert body["details"]["scope"] == "account"
    assert body["details"]["account"] == member.email
    assert body["details"]["count"] == 10
    assert body["ip"] == ip and body["severity"] == "warning"
    assert body["actor"] == {"type": "user", "id": str(member.user_id)}
    assert WRONG_PASSWORD not in str(body)

    # The 11th is refused by the rate limit before it is even tried.
    limited = client.post("/api/v1/auth/login",
                          json={"email": member.email, "password": WRONG_PASSWORD})
    assert limited.status_code == 429
    # More failures in the same window, from other addresses too: still one alert.
    _forget_login_limits(ip)
    for n in range(6):
        _fail_login(make_client(app, ip=ip) if n % 2 else make_client(app), member.email)
    assert len(_alerts(tenant, "alert.failed_logins")) == 1


def test_thirty_failed_logins_from_one_ip_raise_one_alert(app: Flask,
                                                         stack: LocalStack) -> None:
    tenant = make_tenant("Sprayed Co")
    accounts = [make_member(tenant, Role.staff) for _ in range(4)]
    ip = fresh_ip()
    client = make_client(app, ip=ip)
    targets = [accounts[n % 4].email for n in range(30)]  # 8, 8, 7, 7: no account reaches 10

    for n, email in enumerate(targets[:29]):
        if n and n % 10 == 0:
            _forget_login_limits(ip)  # an attacker pacing under the limit for 3 minutes
        _fail_login(client, email)
    assert _alerts(tenant, "alert.failed_logins") == []
    _fail_login(client, targets[29])
    [alert] = _alerts(tenant, "alert.failed_logins")
    body = _delivered(stack, alert)
    assert body["details"]["scope"] == "ip" and body["details"]["count"] == 30
    assert body["ip"] == ip

    _forget_login_limits(ip)
    for email in [a.email for a in accounts] + ["nobody-here@example.com"] * 3:
        status, _ = _login(client, email, WRONG_PASSWORD)
        assert status == 401
    assert len(_alerts(tenant, "alert.failed_logins")) == 1
    with system_session() as db:
        from_ip = db.scalars(select(Alert).where(Alert.type == "alert.failed_logins",
                                                 Alert.payload["ip"].astext == ip)).all()
    assert len(from_ip) == 1


# --- new IP, second IP for a session ---------------------------------------------------------


def test_login_from_a_new_ip_raises_one_alert(app: Flask, stack: LocalStack) -> None:
    tenant = make_tenant("New IP Co")
    member = make_member(tenant, Role.viewonly)
    first, second = fresh_ip(), fresh_ip()

    for _ in range(2):
        assert _login(make_client(app, ip=first), member.email, member.password)[0] == 200
    assert _alerts(tenant, "alert.new_ip") == []  # the first use only starts the history

    assert _login(make_client(app, ip=second), member.email, member.password)[0] == 200
    [alert] = _alerts(tenant, "alert.new_ip")
    body = _delivered(stack, alert)
    assert body["ip"] == second
    assert body["actor"] == {"type": "user", "id": str(member.user_id)}
    assert body["details"]["identity"] == f"user:{member.user_id}"

    for ip in (second, first, second):
        assert _login(make_client(app, ip=ip), member.email, member.password)[0] == 200
    assert len(_alerts(tenant, "alert.new_ip")) == 1


def test_access_key_from_a_new_ip_raises_an_alert(app: Flask, stack: LocalStack) -> None:
    tenant = make_tenant("Key IP Co")
    admin = make_session(make_member(tenant, Role.admin))
    created = make_client(app, admin).post(
        "/api/v1/access-keys", headers={"X-CSRF-Token": admin.csrf},
        json={"name": "ci", "scopes": ["jobs:read"], "expires_in_days": 1})
    assert created.status_code == 201
    key_id, secret = created.get_json()["id"], created.get_json()["key"]
    bearer = {"Authorization": f"Bearer {secret}"}
    first, second = fresh_ip(), fresh_ip()

    for ip in (first, first):
        response = make_client(app, ip=ip).get(f"/api/v1/jobs/{uuid.uuid4()}", headers=bearer)
        assert response.status_code == 404  # authenticated; no such job
    assert _alerts(tenant, "alert.new_ip") == []
    assert make_client(app, ip=second).get(f"/api/v1/jobs/{uuid.uuid4()}",
                                           headers=bearer).status_code == 404
    [alert] = _alerts(tenant, "alert.new_ip")
    body = _delivered(stack, alert)
    assert body["actor"] == {"type": "access_key", "id": key_id} and body["ip"] == second
    assert secret not in str(body)
    events = make_client(app, admin, ip=first).get(
        "/api/v1/audit-events", query_string={"action": "access_key.used_from_new_ip"})
    [event] = events.get_json()["items"]
    assert event["ip"] == second and event["target"] == {"type": "access_key", "id": key_id}


def test_session_used_from_a_second_ip_raises_one_alert(app: Flask,
                                                        stack: LocalStack) -> None:
    tenant = make_tenant("Session IP Co")
    member = make_member(tenant, Role.viewonly)
    first, second = fresh_ip(), fresh_ip()
    at_first = make_client(app, ip=first)
    assert _login(at_first, member.email, member.password)[0] == 200
    assert at_first.get("/api/v1/auth/me").status_code == 200
    assert _alerts(tenant, "alert.session_ip_change") == []

    at_second = make_client(app, ip=second)
    for name in ("portcullis_session", "portcullis_csrf"):
        cookie = at_first.get_cookie(name)
        assert cookie is not None
        at_second.set_cookie(name, cookie.value, domain="localhost")
    me = at_second.get("/api/v1/auth/me")
    assert me.status_code == 200
    [alert] = _alerts(tenant, "alert.session_ip_change")
    body = _delivered(stack, alert)
    assert body["ip"] == second and body["details"]["first_ip"] == first
    assert body["actor"] == {"type": "user", "id": str(member.user_id)}
    sessions = at_first.get("/api/v1/auth/sessions").get_json()["items"]
    assert [s["id"] for s in sessions if s["current"]] == [body["details"]["session_id"]]

    for client in (at_second, at_first, at_second):
        assert client.get("/api/v1/auth/me").status_code == 200
    assert len(_alerts(tenant, "alert.session_ip_change")) == 1


# --- MFA ---------------------------------------------------------------------------------------


def _pending_session(app: Flask, member: Member, ip: str) -> tuple[FlaskClient, str]:
    client = make_client(app, ip=ip)
    status, body = _login(client, member.email, member.password)
    assert status == 200 and body == {"status": "mfa_required"}
    cookie = client.get_cookie("portcullis_csrf")
    assert cookie is not None
    return client, cookie.value


def _wrong_mfa(client: FlaskClient, csrf: str, code: str) -> None:
    response = client.post("/api/v1/auth/mfa/verify", headers={"X-CSRF-Token": csrf},
                           json={"code": code})
    assert response.status_code == 401, response.get_json()
    assert response.get_json()["code"] == "invalid_mfa_code"


def test_five_wrong_mfa_codes_for_one_user_raise_one_alert(app: Flask,
                                                          stack: LocalStack) -> None:
    tenant = make_tenant("MFA Co")
    member = make_member(tenant, Role.admin)
    code = member.wrong_totp_code()
    ip = fresh_ip()

    # The rule counts per user, across sessions (each under its 5/min verify limit).
    first, first_csrf = _pending_session(app, member, ip)
    for _ in range(3):
        _wrong_mfa(first, first_csrf, code)
    second, second_csrf = _pending_session(app, member, ip)
    _wrong_mfa(second, second_csrf, code)
    assert _alerts(tenant, "alert.mfa_failures") == []
    _wrong_mfa(second, second_csrf, code)  # the 5th wrong code for this user
    [alert] = _alerts(tenant, "alert.mfa_failures")
    body = _delivered(stack, alert)
    assert body["actor"] == {"type": "user", "id": str(member.user_id)}
    assert body["details"]["count"] == 5 and body["ip"] == ip
    assert code not in str(body["details"])

    _wrong_mfa(second, second_csrf, code)
    third, third_csrf = _pending_session(app, member, ip)
    for _ in range(3):  # up to 9 wrong codes, under the lockout: still no second alert
        _wrong_mfa(third, third_csrf, code)
    assert third.get("/api/v1/auth/me").get_json()["session"] == "mfa_pending"
    assert len(_alerts(tenant, "alert.mfa_failures")) == 1


def test_the_mfa_lockout_raises_its_own_critical_alert_once(app: Flask,
                                                           stack: LocalStack) -> None:
    """10 wrong codes for one user across sessions lock the second factor: besides the
    per-user rule's alert (at 5), the lock is alerted once, as critical."""
    tenant = make_tenant("MFA Lockout Co")
    member = make_member(tenant, Role.admin)
    code = member.wrong_totp_code()
    ip = fresh_ip()
    for _ in range(2):  # five wrong codes end a session; log in again for five more
        client, csrf = _pending_session(app, member, ip)
        for _ in range(5):
            _wrong_mfa(client, csrf, code)
    alerts = _alerts(tenant, "alert.mfa_failures")
    assert [a.payload["details"].get("scope") for a in alerts] == [None, "lockout"]
    body = _delivered(stack, alerts[1])
    assert body["severity"] == "critical" and body["ip"] == ip
    assert body["actor"] == {"type": "user", "id": str(member.user_id)}
    assert body["details"] == {"scope": "lockout", "count": 10, "window_seconds": 900,
                               "locked_seconds": 900}
    assert code not in str(body)

    client, csrf = _pending_session(app, member, ip)
    for attempt in (code, member.totp_code()):  # refused while locked; no more alerts
        response = client.post("/api/v1/auth/mfa/verify", headers={"X-CSRF-Token": csrf},
                               json={"code": attempt})
        assert response.status_code == 429 and response.get_json()["code"] == "rate_limited"
    assert len(_alerts(tenant, "alert.mfa_failures")) == 2


# --- audit export ------------------------------------------------------------------------------


def test_audit_export_raises_an_alert(app: Flask, stack: LocalStack) -> None:
    tenant = make_tenant("Exported Co")
    admin = make_session(make_member(tenant, Role.admin))
    ip = fresh_ip()
    response = make_client(app, admin, ip=ip).post(
        "/api/v1/audit-exports", headers={"X-CSRF-Token": admin.csrf},
        json={"since": "2024-01-01T00:00:00Z", "until": "2024-06-01T00:00:00Z",
              "format": "csv"})
    assert response.status_code == 202
    [alert] = _alerts(tenant, "alert.audit_export")
    body = _delivered(stack, alert)
    assert body["details"]["job_id"] == response.get_json()["job_id"]
    assert body["details"]["format"] == "csv"
    assert body["actor"] == {"type": "user", "id": str(admin.member.user_id)}
    assert body["ip"] == ip and body["severity"] == "warning"
