"""Every error is problem+json with a stable code and the security headers; never a trace."""

from __future__ import annotations

import pytest
from flask import Flask, abort
from flask.testing import FlaskClient

from app import create_app
from app.problems import PROBLEM_MIME, Problem
from app.validation import RequestModel, parse_body
from portcullis.errors import DependencyUnavailable

SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class Echo(RequestModel):
    name: str
    count: int = 1


@pytest.fixture(scope="module")
def probe_app(stack: object) -> Flask:
    """The real app plus a few routes that fail on purpose."""
    app = create_app()

    @app.post("/_test/echo")
    def echo() -> dict[str, object]:
        return parse_body(Echo).model_dump()

    @app.get("/_test/boom")
    def boom() -> None:
        raise RuntimeError("database password is hunter2 at /srv/app.py line 3")

    @app.get("/_test/down")
    def down() -> None:
        raise DependencyUnavailable("clamd", "connection refused to tcp://secret-host")

    @app.get("/_test/abort/<int:status>")
    def aborter(status: int) -> None:
        if status in (409, 410, 429):
            raise Problem(status)
        abort(status)

    return app


@pytest.fixture
def probe(probe_app: Flask) -> FlaskClient:
    return probe_app.test_client()


def _assert_problem(response: object, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status  # type: ignore[attr-defined]
    assert response.mimetype == PROBLEM_MIME  # type: ignore[attr-defined]
    body = response.get_json(force=True)  # type: ignore[attr-defined]
    assert body["status"] == status and body["code"] == code
    assert body["type"] and body["title"]
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, name  # type: ignore[attr-defined]
    assert response.headers["X-Request-ID"]  # type: ignore[attr-defined]
    return body


@pytest.mark.parametrize(("status", "code"), [
    (400, "validation_error"), (401, "not_authenticated"), (403, "forbidden"),
    (404, "not_found"), (405, "method_not_allowed"), (409, "conflict"), (410, "gone"),
    (413, "payload_too_large"), (415, "unsupported_media_type"), (429, "rate_limited"),
])
def test_each_status_is_a_problem_with_headers(probe: FlaskClient, status: int,
                                               code: str) -> None:
    _assert_problem(probe.get(f"/_test/abort/{status}"), status, code)


def test_unknown_route_and_method(probe: FlaskClient) -> None:
    _assert_problem(probe.get("/nowhere"), 404, "not_found")
    response = probe.delete("/healthz")
    _assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_unknown_fields_are_rejected(probe: FlaskClient) -> None:
    body = _assert_problem(probe.post("/_test/echo", json={"name": "a", "admin": True}),
                           400, "validation_error")
    assert body["errors"] == [{"loc": ["body", "admin"], "msg": "Extra inputs are not permitted"}]


def test_invalid_fields_are_located(probe: FlaskClient) -> None:
    body = _assert_problem(probe.post("/_test/echo", json={"count": "many"}),
                           400, "validation_error")
    locations = sorted(tuple(e["loc"]) for e in body["errors"])  # type: ignore[union-attr]
    assert locations == [("body", "count"), ("body", "name")]


def test_malformed_json_and_wrong_type(probe: FlaskClient) -> None:
    _assert_problem(probe.post("/_test/echo", data="{nope", content_type="application/json"),
                    400, "malformed_json")
    _assert_problem(probe.post("/_test/echo", data="name=a",
                               content_type="application/x-www-form-urlencoded"),
                    415, "unsupported_media_type")
    _assert_problem(probe.post("/_test/echo", json=[1, 2]), 400, "validation_error")


def test_body_over_the_limit_is_413(probe: FlaskClient) -> None:
    limit = probe.application.config["MAX_CONTENT_LENGTH"]
    response = probe.post("/_test/echo", data=b"x" * (limit + 1),
                          content_type="application/json")
    _assert_problem(response, 413, "payload_too_large")


def test_valid_body_passes(probe: FlaskClient) -> None:
    assert probe.post("/_test/echo", json={"name": "a"}).get_json() == {"name": "a", "count": 1}


def test_unexpected_error_is_a_generic_500_with_request_id(probe: FlaskClient) -> None:
    response = probe.get("/_test/boom", headers={"X-Request-ID": "trace-abc-123"})
    body = _assert_problem(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    assert body["request_id"] == "trace-abc-123"
    assert "hunter2" not in text and "Traceback" not in text and "app.py" not in text


def test_dependency_down_is_503(probe: FlaskClient) -> None:
    response = probe.get("/_test/down")
    body = _assert_problem(response, 503, "dependency_unavailable")
    assert "secret-host" not in response.get_data(as_text=True)
    assert "clamd" in str(body["detail"])


def test_request_id_is_generated_when_missing_or_unsafe(probe: FlaskClient) -> None:
    generated = probe.get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 36
    unsafe = probe.get("/healthz", headers={"X-Request-ID": "<script>alert(1)</script>"})
    assert unsafe.headers["X-Request-ID"] != "<script>alert(1)</script>"
    kept = probe.get("/healthz", headers={"X-Request-ID": "req-0123456789"})
    assert kept.headers["X-Request-ID"] == "req-0123456789"


def test_success_responses_carry_security_headers(probe: FlaskClient) -> None:
    response = probe.get("/healthz")
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
