"""Liveness always; readiness names the dependency that is down."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from devstack.stack import LocalStack


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_all_up(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"status": "ok", "checks": {
        "database": "ok", "redis": "ok", "clamd": "ok", "storage": "ok"}}


@pytest.mark.parametrize(("service", "check"), [
    ("postgres", "database"), ("redis", "redis"), ("clamd", "clamd"), ("s3", "storage"),
])
def test_readyz_names_the_one_that_is_down(client: FlaskClient, stack: LocalStack,
                                           service: str, check: str) -> None:
    stack[service].stop()
    try:
        response = client.get("/readyz")
    finally:
        stack[service].start()
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "down"
    assert body["checks"][check] == "down"
    assert [name for name, state in body["checks"].items() if state == "down"] == [check]
    assert client.get("/readyz").status_code == 200


def test_database_restart_costs_no_request(app: object, stack: LocalStack) -> None:
    """Pooled connections that died with the server are noticed at checkout and replaced."""
    from portcullis.accounts.models import Role
    from tests.support.factories import make_member, make_session, make_tenant
    from tests.support.web import make_client

    member = make_session(make_member(make_tenant(), Role.viewonly))
    client = make_client(app, member)  # type: ignore[arg-type]
    assert client.get("/api/v1/auth/me").status_code == 200
    stack["postgres"].stop()
    stack["postgres"].start()
    statuses = [client.get("/api/v1/auth/me").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
