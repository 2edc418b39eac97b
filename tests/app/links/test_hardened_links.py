"""Hardened share links through the API (API.md, "Share links can be hardened"): what
``POST /files/{id}/links`` accepts and answers, the download budget, the password (HTTP
Basic, its limit and its alert), the allowed client addresses, and the ``link.downloaded``
audit event."""

from __future__ import annotations

import base64
import io
import json
import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from devstack.stack import LocalStack
from portcullis.accounts.models import Role
from portcullis.alerts.models import Alert
from portcullis.audit.models import AuditEvent
from portcullis.db import system_session
from portcullis.links.models import ShareLink
from tests.support.factories import (
    Link,
    LoggedIn,
    StoredFile,
    make_bucket,
    make_file,
    make_file_link,
    make_member,
    make_session,
    make_tenant,
)
from tests.support.web import ClientFor, app_with, csrf_headers, fresh_ip, problem_code

pytestmark = pytest.mark.usefixtures("stack")

DATA = b"the shared bytes"
PASSWORD = "a long link password"
CHALLENGE = 'Basic realm="portcullis-share"'


def basic(password: str, user: str = "anyone") -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.fixture(scope="module")
def admin(stack: LocalStack) -> LoggedIn:
    return make_session(make_member(make_tenant("Hardened Links Co"), Role.admin))


@pytest.fixture(scope="module")
def stored(admin: LoggedIn) -> StoredFile:
    return make_file(admin.member, make_bucket(admin.member), DATA, filename="shared.png")


def _create(client_for: ClientFor, who: LoggedIn, file_id: uuid.UUID,
            body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = client_for(who).post(f"/api/v1/files/{file_id}/links", json=body,
                                    headers=csrf_headers(who))
    return response.status_code, response.get_json()


def _row(link_id: str | uuid.UUID) -> ShareLink:
    with system_session() as db:
        return db.get_one(ShareLink, uuid.UUID(str(link_id)))


# --- creating ------------------------------------------------------------------------------

def test_a_hardened_link_answers_its_rules_and_never_its_password(
        client_for: ClientFor, admin: LoggedIn, stored: StoredFile) -> None:
    status, body = _create(client_for, admin, stored.id, {
        "expires_in": 600, "max_downloads": 3, "password": PASSWORD,
        "allowed_ips": ["198.51.100.7/24", "2001:DB8::1", "198.51.100.0/24"]})
    assert status == 201, body
    assert set(body) == {"id", "url", "token", "expires_at", "max_downloads", "downloads",
                         "password_protected", "allowed_ips"}
    assert body["url"].endswith(f"/s/{body['token']}")
    assert body["max_downloads"] == 3 and body["downloads"] == 0
    assert body["password_protected"] is True
    assert body["allowed_ips"] == ["198.51.100.0/24", "2001:db8::1"]  # normalised, once each
    row = _row(body["id"])
    assert row.password_hash is not None and row.password_hash.startswith("$2b$")
    assert PASSWORD not in row.password_hash
    with system_session() as db:
        created = db.scalars(select(AuditEvent).where(AuditEvent.action == "link.created",
                                                      AuditEvent.target_id == body["id"])).one()
    assert created.details["protected"] is True and created.details["max_downloads"] == 3
    assert created.details["allowed_ips"] == ["198.51.100.0/24", "2001:db8::1"]
    assert PASSWORD not in str(created.details) and body["token"] not in str(created.details)


def test_a_chunked_body_keeps_its_rules(client_for: ClientFor, admin: LoggedIn,
                                        stored: StoredFile) -> None:
    """A body sent without a Content-Length (Transfer-Encoding: chunked, as streaming
    clients and some proxies send it) is read like any other: never a plain link instead."""
    body = json.dumps({"expires_in": 600, "max_downloads": 2, "password": PASSWORD}).encode()
    response = client_for(admin).post(
        f"/api/v1/files/{stored.id}/links", input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={**csrf_headers(admin), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""})
    assert response.status_code == 201, response.get_json()
    assert response.request.content_length is None
    created = response.get_json()
    assert created["password_protected"] is True and created["max_downloads"] == 2


def test_a_plain_link_answers_the_same_fields(client_for: ClientFor, admin: LoggedIn,
                                              stored: StoredFile) -> None:
    status, body = _create(client_for, admin, stored.id, {})
    assert status == 201, body
    assert body["max_downloads"] is None and body["downloads"] == 0
    assert body["password_protected"] is False and body["allowed_ips"] is None


def test_a_password_is_kept_exactly_as_sent(client_for: ClientFor, admin: LoggedIn,
                                            stored: StoredFile) -> None:
    """Request strings are stripped elsewhere; HTTP Basic sends the password verbatim."""
    spaced = "  spaces around it  "
    status, body = _create(client_for, admin, stored.id, {"password": spaced})
    assert status == 201, body
    path = f"/s/{body['token']}"
    assert client_for().get(path, headers=basic(spaced)).status_code == 200
    assert client_for().get(path, headers=basic(spaced.strip())).status_code == 401


@pytest.mark.parametrize("body", [
    {"max_downloads": 0}, {"max_downloads": 10001}, {"max_downloads": -1},
    {"max_downloads": "three"}, {"max_downloads": 1.5},
    {"password": "x" * 11}, {"password": "x" * 129}, {"password": 123456789012},
    {"password": ""},
    {"allowed_ips": []}, {"allowed_ips": [f"192.0.2.{i}" for i in range(21)]},
    {"allowed_ips": ["not-an-ip"]}, {"allowed_ips": ["10.0.0.0/33"]},
    {"allowed_ips": ["::1/129"]}, {"allowed_ips": ["fe80::1%eth0"]},
    {"allowed_ips": ["192.0.2.1", "localhost"]}, {"allowed_ips": [7]},
    {"allowed_ips": "192.0.2.1"}, {"allowed_ips": ["x" * 5000]},
    {"allowed_ips": ["192.0.2.1\x00"]},
])
def test_bad_rules_are_a_400_problem(client_for: ClientFor, admin: LoggedIn,
                                     stored: StoredFile, body: dict[str, Any]) -> None:
    status, answer = _create(client_for, admin, stored.id, body)
    assert status == 400, answer
    assert answer["code"] == "validation_error"
    assert answer["errors"] and answer["errors"][0]["loc"][:2] == ["body", next(iter(body))]


def test_twenty_addresses_are_accepted(client_for: ClientFor, admin: LoggedIn,
                                       stored: StoredFile) -> None:
    ips = [f"192.0.2.{i}" for i in range(20)]
    status, body = _create(client_for, admin, stored.id, {"allowed_ips": ips,
                                                          "max_downloads": 10000})
    assert status == 201, body
    assert body["allowed_ips"] == ips and body["max_downloads"] == 10000


# --- the download budget ---------------------------------------------------------------------

def test_the_budget_serves_that_many_then_410(client_for: ClientFor,
                                              stored: StoredFile) -> None:
    link = make_file_link(stored, max_downloads=2)
    public = client_for()
    assert public.head(link.path).status_code == 200  # a HEAD starts no download
    for _ in range(2):
        served = public.get(link.path)
        assert served.status_code == 200 and served.data == DATA
    spent = public.get(link.path)
    assert spent.status_code == 410 and problem_code(spent) == "link_used_up"
    assert DATA not in spent.data
    assert public.head(link.path).status_code == 410
    assert _row(link.id).downloads == 2


# --- passwords -----------------------------------------------------------------------------

def test_a_password_link_challenges_until_the_password_comes(
        client_for: ClientFor, stored: StoredFile) -> None:
    link = make_file_link(stored, password=PASSWORD)
    public = client_for()
    for headers in ({}, {"Authorization": "Bearer pck_not_basic"},
                    {"Authorization": "Basic !!!"}, basic("")):
        challenged = public.get(link.path, headers=headers)
        assert challenged.status_code == 401, headers
        assert challenged.headers["WWW-Authenticate"] == CHALLENGE
        assert problem_code(challenged) == "password_required"
        assert DATA not in challenged.data
    wrong = public.get(link.path, headers=basic("not the password at all"))
    assert wrong.status_code == 401 and problem_code(wrong) == "invalid_credentials"
    assert wrong.headers["WWW-Authenticate"] == CHALLENGE and DATA not in wrong.data
    for user in ("anyone", "", "Zoë Example"):  # any user name
        served = public.get(link.path, headers=basic(PASSWORD, user=user))
        assert served.status_code == 200 and served.data == DATA, user


def _wrong(client: FlaskClient, link: Link, times: int) -> None:
    for _ in range(times):
        response = client.get(link.path, headers=basic("a wrong guess, again"))
        assert response.status_code == 401 and problem_code(response) == "invalid_credentials"


def test_wrong_passwords_are_limited_per_link_and_address(client_for: ClientFor,
                                                          stored: StoredFile) -> None:
    link, other_link = (make_file_link(stored, password=PASSWORD) for _ in range(2))
    guesser = client_for()
    for _ in range(15):  # asking without a password is no guess: never counted
        assert guesser.get(link.path).status_code == 401
    _wrong(guesser, link, 10)
    for headers in (basic("a wrong guess, again"), basic(PASSWORD)):  # the right one too
        limited = guesser.get(link.path, headers=headers)
        assert limited.status_code == 429 and problem_code(limited) == "rate_limited"
        assert int(limited.headers["Retry-After"]) > 0
        assert DATA not in limited.data
    # Per link and address: another address, or another link, is not limited.
    assert client_for().get(link.path, headers=basic(PASSWORD)).status_code == 200
    assert guesser.get(other_link.path, headers=basic(PASSWORD)).status_code == 200


def _alerts(link_id: uuid.UUID) -> list[Alert]:
    with system_session() as db:
        return [a for a in db.scalars(select(Alert).where(
            Alert.type == "alert.link_password_failures").order_by(Alert.created_at))
            if a.payload["details"].get("link_id") == str(link_id)]


def test_ten_wrong_passwords_for_one_link_raise_one_alert(
        client_for: ClientFor, stored: StoredFile, stack: LocalStack, worker: object) -> None:
    link = make_file_link(stored, password=PASSWORD)
    first, second = client_for(), client_for()
    _wrong(first, link, 6)
    _wrong(second, link, 3)  # from any address: 9 so far
    assert _alerts(link.id) == []
    _wrong(second, link, 1)
    [alert] = _alerts(link.id)
    assert alert.tenant_id == stored.tenant_id and alert.severity == "warning"
    _wrong(client_for(), link, 5)  # more in the same window: still one alert
    assert len(_alerts(link.id)) == 1
    delivery = stack["siem"].wait_for(lambda d: d.id == str(alert.id), timeout=30)
    assert delivery.verified
    body = delivery.body
    assert body["type"] == "alert.link_password_failures"
    assert body["details"]["count"] == 10 and body["details"]["link_id"] == str(link.id)
    assert body["actor"]["type"] == "anonymous"
    assert link.token not in str(body) and "wrong guess" not in str(body)


# --- allowed addresses ----------------------------------------------------------------------

def test_only_the_allowed_addresses_may_download(client_for: ClientFor,
                                                 stored: StoredFile) -> None:
    link = make_file_link(stored, allowed_ips=["198.51.100.0/24", "2001:db8::1"])
    for ip in ("198.51.100.7", "198.51.100.200", "2001:db8::1"):
        served = client_for(ip=ip).get(link.path)
        assert served.status_code == 200 and served.data == DATA, ip
    unknown = _problem(client_for(ip="203.0.113.9").get(f"/s/{'x' * 43}").get_json())
    for ip in ("203.0.113.9", "198.51.101.7", "2001:db8::2", fresh_ip()):
        refused = client_for(ip=ip).get(link.path)
        assert refused.status_code == 404, ip
        assert _problem(refused.get_json()) == unknown  # the same answer as an unknown link
        assert DATA not in refused.data


def _problem(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "request_id"}


def test_a_refused_address_learns_nothing_else(client_for: ClientFor,
                                               stored: StoredFile) -> None:
    """Not that the link is spent, nor that it wants a password: just 404."""
    link = make_file_link(stored, allowed_ips=["198.51.100.0/24"], max_downloads=1,
                          downloads=1, password=PASSWORD)
    refused = client_for(ip="203.0.113.9").get(link.path, headers=basic(PASSWORD))
    assert refused.status_code == 404 and "WWW-Authenticate" not in refused.headers
    assert client_for(ip="198.51.100.3").get(link.path).status_code == 410


def test_the_client_address_is_the_one_the_app_resolves(stack: LocalStack,
                                                        stored: StoredFile) -> None:
    """Behind a trusted proxy, the right-most untrusted X-Forwarded-For hop; a client's own
    X-Forwarded-For is never believed."""
    link = make_file_link(stored, allowed_ips=["198.51.100.0/24"])
    with app_with(TRUSTED_PROXIES="10.9.0.0/16") as app:
        via_proxy = _client(app, "10.9.0.5")
        assert via_proxy.get(link.path, headers={
            "X-Forwarded-For": "203.0.113.1, 198.51.100.9"}).status_code == 200
        assert via_proxy.get(link.path, headers={
            "X-Forwarded-For": "198.51.100.9, 203.0.113.1"}).status_code == 404
        spoofed = _client(app, "203.0.113.1").get(
            link.path, headers={"X-Forwarded-For": "198.51.100.9"})
        assert spoofed.status_code == 404


def _client(app: Flask, ip: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


# --- the audit trail -------------------------------------------------------------------------

def test_each_download_is_audited_with_the_address_never_the_token(
        client_for: ClientFor, stored: StoredFile) -> None:
    link = make_file_link(stored, max_downloads=5, password=PASSWORD)
    ip = fresh_ip()
    assert client_for(ip=ip, user_agent="fetcher/1").get(
        link.path, headers=basic(PASSWORD)).status_code == 200
    client_for(ip=ip).get(link.path)  # refused (401): not a download
    client_for(ip=ip).head(link.path, headers=basic(PASSWORD))  # a HEAD: not a download
    with system_session() as db:
        [event] = db.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == stored.tenant_id, AuditEvent.action == "link.downloaded",
            AuditEvent.target_id == str(link.id))).all()
        row = {column.key: getattr(event, column.key)
               for column in AuditEvent.__table__.columns}
    assert str(event.ip) == ip and event.user_agent == "fetcher/1"
    assert event.actor_type == "anonymous" and event.target_type == "link"
    assert event.severity == "info"
    assert event.details == {"kind": "file", "file_id": str(stored.id), "downloads": 1,
                             "max_downloads": 5}
    assert link.token not in str(row) and PASSWORD not in str(row)
