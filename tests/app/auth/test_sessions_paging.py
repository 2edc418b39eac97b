"""GET /api/v1/auth/sessions is cursor-paginated like every list (API.md's Conventions):
``limit`` 1..200 (default 50), an opaque ``cursor``, newest first, no row skipped or
repeated, even among sessions created in the same instant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portcullis.accounts.models import Role, SessionState, UserSession
from portcullis.db import tenant_session
from tests.support.cursors import WRONG_TYPES
from tests.support.factories import LoggedIn, Member, make_member, make_session, make_tenant
from tests.support.web import ClientFor

ABSOLUTE = timedelta(hours=12)


def _add_sessions(member: Member, created_at: datetime, count: int,
                  **overrides: object) -> list[str]:
    """``count`` sessions of the member, all created at the same instant (a keyset tie)."""
    ids = [uuid.uuid4() for _ in range(count)]
    values = {"state": SessionState.full.value, "last_seen_at": created_at,
              "expires_at": created_at + ABSOLUTE} | overrides
    with tenant_session(member.tenant_id) as db:
        for session_id in ids:
            db.add(UserSession(id=session_id, tenant_id=member.tenant_id,
                               user_id=member.user_id, created_at=created_at, **values))
    return [str(i) for i in ids]


def _pages(client: FlaskClient, limit: int) -> list[list[dict]]:
    pages: list[list[dict]] = []
    cursor: str | None = None
    while True:
        query = f"limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(f"/api/v1/auth/sessions?{query}")
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert set(body) == {"items", "next_cursor"}
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(body["items"]) == limit, "only the last page may be short"
        assert len(pages) < 50, "pagination does not end"


@pytest.fixture(scope="module")
def many(app: Flask) -> tuple[LoggedIn, set[str]]:
    """A member with 13 live sessions (the current one included, 6 sharing one instant)
    plus revoked and expired ones, and a colleague with sessions of their own."""
    tenant = make_tenant("Sessions Paging Co")
    member = make_member(tenant, Role.viewonly)
    now = datetime.now(UTC)
    live = set(_add_sessions(member, now - timedelta(minutes=5), 6))
    for minutes in range(6, 12):
        live |= set(_add_sessions(member, now - timedelta(minutes=minutes), 1))
    _add_sessions(member, now - timedelta(minutes=3), 2, revoked_at=now)
    _add_sessions(member, now - timedelta(hours=13), 2)  # past the absolute lifetime
    _add_sessions(make_member(tenant, Role.viewonly), now - timedelta(minutes=4), 3)
    current = make_session(member)
    live.add(str(current.session_id))
    return current, live


@pytest.mark.parametrize("limit", [1, 2, 5, 12, 13, 200])
def test_paging_returns_every_live_session_once_newest_first(
        client_for: ClientFor, many: tuple[LoggedIn, set[str]], limit: int) -> None:
    current, live = many
    client = client_for(current)
    pages = _pages(client, limit)
    items = [s for page in pages for s in page]
    seen = [s["id"] for s in items]
    assert len(seen) == len(set(seen)), "a session appeared twice"
    assert set(seen) == live, "a session was skipped, or someone else's was listed"
    assert len(pages) in (-(-len(live) // limit), -(-len(live) // limit) + 1)
    stamps = [datetime.fromisoformat(s["created_at"]) for s in items]
    assert stamps == sorted(stamps, reverse=True)
    assert [s["id"] for s in items if s["current"]] == [str(current.session_id)]
    everything = client.get("/api/v1/auth/sessions?limit=200").get_json()
    assert [s["id"] for s in everything["items"]] == seen


def test_the_default_page_is_fifty(client_for: ClientFor) -> None:
    member = make_member(make_tenant("Sessions Default Co"), Role.viewonly)
    _add_sessions(member, datetime.now(UTC) - timedelta(minutes=1), 55)
    client = client_for(make_session(member))
    first = client.get("/api/v1/auth/sessions").get_json()
    assert len(first["items"]) == 50 and first["next_cursor"] is not None
    rest = client.get(f"/api/v1/auth/sessions?cursor={first['next_cursor']}").get_json()
    assert len(rest["items"]) == 6 and rest["next_cursor"] is None
    assert not {s["id"] for s in first["items"]} & {s["id"] for s in rest["items"]}


@pytest.mark.parametrize(("query", "code"), [
    ("limit=0", "validation_error"), ("limit=201", "validation_error"),
    ("limit=-1", "validation_error"), ("limit=two", "validation_error"),
    ("cursor=not-a-cursor!!", "invalid_cursor"), ("cursor=WyJ4IiwgInkiXQ", "invalid_cursor"),
])
def test_bad_page_parameters_are_400(client_for: ClientFor, many: tuple[LoggedIn, set[str]],
                                     query: str, code: str) -> None:
    current, _ = many
    response = client_for(current).get(f"/api/v1/auth/sessions?{query}")
    assert response.status_code == 400, response.get_json()
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.get_json()["code"] == code


@pytest.mark.parametrize("cursor", WRONG_TYPES)
def test_a_cursor_of_the_wrong_shape_is_400(client_for: ClientFor, many: tuple[LoggedIn, set[str]],
                                            cursor: str) -> None:
    current, _ = many
    response = client_for(current).get(f"/api/v1/auth/sessions?cursor={cursor}")
    assert response.status_code == 400, response.get_json()
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.get_json()["code"] == "invalid_cursor"
