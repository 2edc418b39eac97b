"""Hostile bodies and query strings are 400/413/415 problems on every route, never a 500.

Issue #10: a deeply nested body blew the JSON decoder's stack, NUL bytes reached PostgreSQL
(DataError), and a malformed filter answered an empty page. The last test walks every
documented operation, so a new route is covered the day it is added.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.problems import PROBLEM_MIME
from app.validation import JSON_MAX_BYTES, JSON_MAX_DEPTH
from portcullis.accounts.models import Role
from tests.support.factories import PASSWORD, login
from tests.support.web import csrf_headers, make_client

# Deep enough to exhaust the decoder's stack, small enough to pass the size limit.
DEEP = "[" * 30_000 + "]" * 30_000
SIGNUP = {"company_name": "Hostile Co", "name": "Owner", "password": PASSWORD}


def _admin(app: Flask) -> tuple[FlaskClient, dict[str, str]]:
    """A new admin's client (each has its own rate budget), from its own address."""
    client = make_client(app)
    return client, csrf_headers(login(client, Role.admin))


def _problem(response: TestResponse, status: int | set[int], code: str | None = None,
             ) -> dict[str, Any]:
    statuses = {status} if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.get_data())
    assert response.mimetype == PROBLEM_MIME
    body: dict[str, Any] = json.loads(response.get_data())
    if code is not None:
        assert body["code"] == code, body
    return body


def _email() -> str:
    return f"hostile-{uuid.uuid4().hex[:10]}@example.com"


# --------------------------------------------------------------------------- bodies

@pytest.mark.parametrize("path", ["/api/v1/auth/signup", "/api/v1/auth/login"])
def test_a_body_nested_past_the_decoders_stack_is_a_400(app: Flask, path: str) -> None:
    """Login is the sharp case: its rate-limit key reads the body before the view does."""
    assert len(DEEP) < JSON_MAX_BYTES
    response = make_client(app).post(path, data=DEEP, content_type="application/json")
    body = _problem(response, 400, "validation_error")
    assert body["errors"] == [{"loc": ["body"],
                               "msg": f"Nested more than {JSON_MAX_DEPTH} levels deep"}]


def test_nesting_is_bounded_below_the_stack_too(app: Flask) -> None:
    nested: Any = "x"
    for _ in range(JSON_MAX_DEPTH + 1):
        nested = {"a": nested}
    response = make_client(app).post("/api/v1/auth/signup", json={**SIGNUP, "email": _email(),
                                                                  "name": nested})
    body = _problem(response, 400, "validation_error")
    assert body["errors"] == [{"loc": ["body"],
                               "msg": f"Nested more than {JSON_MAX_DEPTH} levels deep"}]


def test_a_hostile_login_body_leaves_the_rate_limits_on_redis(
        app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    """flask-limiter takes any error in a key function for a dead Redis and falls back to
    per-process limits: a bad body must not be a way to switch the shared limits off."""
    with caplog.at_level(logging.WARNING, logger="flask-limiter"):
        for data in (DEEP, "{" + " " * JSON_MAX_BYTES + "}"):
            response = make_client(app).post("/api/v1/auth/login", data=data,
                                             content_type="application/json")
            assert response.status_code in (400, 413)
    assert "falling back" not in caplog.text
    assert "Swallowing" not in caplog.text


def test_a_json_body_over_its_limit_is_413_long_before_the_upload_limit(app: Flask) -> None:
    assert app.config["MAX_CONTENT_LENGTH"] > 10 * JSON_MAX_BYTES
    padded = json.dumps({**SIGNUP, "email": _email(), "name": "n" * JSON_MAX_BYTES})
    response = make_client(app).post("/api/v1/auth/signup", data=padded,
                                     content_type="application/json")
    _problem(response, 413, "payload_too_large")


def test_a_chunked_json_body_over_its_limit_is_413(app: Flask) -> None:
    client, headers = _admin(app)
    body = json.dumps({"name": "b" * (2 * JSON_MAX_BYTES)}).encode()
    response = client.post("/api/v1/buckets", input_stream=io.BytesIO(body),
                           content_type="application/json", headers=headers,
                           environ_overrides={"wsgi.input_terminated": True})
    _problem(response, 413, "payload_too_large")


@pytest.mark.parametrize("field", ["email", "name", "company_name", "password"])
def test_nul_in_a_signup_field_is_a_located_400(app: Flask, field: str) -> None:
    body = {**SIGNUP, "email": _email()}
    body[field] = body[field][:3] + "\x00" + body[field][3:]
    response = make_client(app).post("/api/v1/auth/signup", json=body)
    errors = _problem(response, 400, "validation_error")["errors"]
    assert {"loc": ["body", field], "msg": "Must not contain NUL characters"} in errors


def test_nul_or_a_lone_surrogate_in_login_never_reaches_the_database(app: Flask) -> None:
    for email in ("a\x00@example.com", "a\ud800@example.com"):
        raw = json.dumps({"email": email, "password": PASSWORD})  # ascii-escaped, valid JSON
        response = make_client(app).post("/api/v1/auth/login", data=raw,
                                         content_type="application/json")
        errors = _problem(response, 400, "validation_error")["errors"]
        assert errors[0]["loc"] == ["body", "email"]


def test_nul_in_a_nested_value_or_a_key_is_refused(app: Flask) -> None:
    client, headers = _admin(app)
    for body, error in (
            ({"name": ["ok", "b\x00d"]},
             {"loc": ["body", "name", "1"], "msg": "Must not contain NUL characters"}),
            ({"na\x00me": "x"},
             {"loc": ["body"], "msg": "A key must not contain NUL characters"})):
        response = client.post("/api/v1/buckets", json=body, headers=headers)
        assert _problem(response, 400, "validation_error")["errors"] == [error]


def test_bodies_are_utf8_only(app: Flask) -> None:
    client, headers = _admin(app)
    for raw in ('{"name": "utf-sixteen"}'.encode("utf-16"), b'{"name": "\xff\xfe"}'):
        response = client.post("/api/v1/buckets", data=raw, content_type="application/json",
                               headers=headers)
        _problem(response, 400, "malformed_json")


# --------------------------------------------------------------------------- query strings

def _cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize(("query", "code"), [
    ("actor_id=not-a-uuid", "validation_error"),
    ("actor_id=" + "1" * 64, "validation_error"),
    ("action=a%00b", "validation_error"),
    ("action=Not%20An%20Action", "validation_error"),
    ("severity=loud", "validation_error"),
    ("since=2024-01-01T00:00:00", "validation_error"),  # no offset: not RFC 3339
    ("until=yesterday", "validation_error"),
    ("limit=0", "validation_error"), ("limit=201", "validation_error"),
    ("limit=x", "validation_error"), ("limit=1&limit=2", "validation_error"),
    ("nope=1", "validation_error"), ("a%00=1", "validation_error"),
    ("cursor=%00", "validation_error"),
    ("cursor=" + _cursor(["2024-01-01T00:00:00+00:00", 5]), "invalid_cursor"),
    ("cursor=" + _cursor([1, 2]), "invalid_cursor"),
    ("cursor=" + _cursor(["2024-01-01T00:00:00", str(uuid.uuid4())]), "invalid_cursor"),
])
def test_a_malformed_audit_filter_is_a_400(app: Flask, query: str, code: str) -> None:
    client, _ = _admin(app)
    _problem(client.get(f"/api/v1/audit-events?{query}"), 400, code)


def test_well_formed_filters_still_answer_pages(app: Flask) -> None:
    client, _ = _admin(app)
    for query in (f"actor_id={uuid.uuid4()}", "action=no.such_action", "severity=notice",
                  "since=2024-01-01T00:00:00Z", "limit=1"):
        response = client.get(f"/api/v1/audit-events?{query}")
        assert response.status_code == 200, (query, response.get_json())


@pytest.mark.parametrize("path", ["/api/v1/buckets", "/api/v1/members", "/api/v1/access-keys",
                                  "/api/v1/auth/sessions"])
def test_every_list_refuses_nul_in_its_query(app: Flask, path: str) -> None:
    client, _ = _admin(app)
    _problem(client.get(f"{path}?cursor=ab%00cd"), 400, "validation_error")


# --------------------------------------------------------------------------- every operation

def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, entry) for path, ops in document["paths"].items()
            for method, entry in ops.items()]


def _url(path: str, entry: dict[str, Any]) -> str:
    for param in entry["parameters"]:
        if param["in"] == "path":
            value = str(uuid.uuid4()) if param["schema"].get("format") == "uuid" else "x" * 43
            path = path.replace("{" + param["name"] + "}", value)
    return path


def _probes(entry: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    probes: list[tuple[str, dict[str, Any]]] = []
    if "requestBody" in entry:
        probes += [
            ("text body", {"data": "name=x", "content_type": "text/plain"}),
            ("nested body", {"data": DEEP, "content_type": "application/json"}),
            ("NUL body", {"data": json.dumps({"name": "a\x00b", "token": "t\x00",
                                               "email": "a\x00@example.com"}),
                          "content_type": "application/json"}),
            ("huge body", {"data": "[" + "1," * JSON_MAX_BYTES + "1]",
                           "content_type": "application/json"}),
        ]
    names = {p["name"] for p in entry["parameters"] if p["in"] == "query"}
    if names:
        probes += [("NUL query", {"query_string": f"{sorted(names)[0]}=a%00b"}),
                   ("bad limit", {"query_string": "limit=x"} if "limit" in names else {}),
                   ("bad cursor", {"query_string": "cursor=!!"} if "cursor" in names else {})]
    return [(name, kwargs) for name, kwargs in probes if kwargs]


def test_every_operation_answers_hostile_input_with_a_documented_problem(app: Flask) -> None:
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    checked = 0
    for path, method, entry in _operations(document):
        client, headers = _admin(app)  # a fresh admin per operation: its own rate budget
        for name, kwargs in _probes(entry):
            kwargs = dict(kwargs)
            query = kwargs.pop("query_string", None)
            url = _url(path, entry) + (f"?{query}" if query else "")
            response = client.open(url, method=method.upper(), headers=headers, **kwargs)
            where = (method, path, name, response.status_code, response.get_data()[:200])
            assert response.status_code < 500, where
            assert 400 <= response.status_code < 500, where  # hostile input is never accepted
            assert response.status_code != 429, where  # else the probe proved nothing
            assert response.mimetype == PROBLEM_MIME, where
            assert str(response.status_code) in entry["responses"], where
            checked += 1
    assert checked > 60
