"""GET /api/v1/audit-events: admins and audit:read keys only; every filter; newest first;
keyset pages that hold while rows are being inserted; never another tenant's rows."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from devstack.stack import LocalStack
from portcullis.accounts.models import Role
from portcullis.audit.models import AuditEvent, Severity
from portcullis.db import system_session
from tests.support.factories import (
    make_access_key,
    make_member,
    make_session,
    make_tenant,
    record_event,
)
from tests.support.web import make_client

URL = "/api/v1/audit-events"
ITEM_FIELDS = {"id", "occurred_at", "action", "severity", "actor", "target", "ip",
               "user_agent", "details"}
# (action, severity) pairs the seed cycles through.
SEEDS = [("member.invited", Severity.notice), ("auth.login_failed", Severity.warning),
         ("tenant.suspended", Severity.critical), ("auth.logout", Severity.info)]


@dataclass
class Seeded:
    tenant_id: uuid.UUID
    actors: list[str]
    other_tenant_id: uuid.UUID
    other_actor: str


def _record(tenant_id: uuid.UUID, action: str, severity: Severity, actor_id: str,
            n: int = 0) -> None:
    record_event(tenant_id, action, severity, actor=("user", actor_id), target=("member", f"m-{n}"),
                 ip=f"203.0.113.{n % 250 + 1}", user_agent=f"query-test/{n}", details={"n": n})


def _seed(tenant_id: uuid.UUID, actors: list[str], count: int) -> None:
    for n in range(count):
        action, severity = SEEDS[n % len(SEEDS)]
        _record(tenant_id, action, severity, actors[n % len(actors)], n)


@pytest.fixture(scope="module")
def seeded(stack: LocalStack) -> Seeded:
    tenant = make_tenant("Audit Query Co")
    other = make_tenant("Audit Other Co")
    actors = [str(uuid.uuid4()) for _ in range(3)]
    other_actor = str(uuid.uuid4())
    _seed(tenant, actors, 60)  # more than the default page of 50
    _seed(other, [other_actor, *actors], 12)  # same actions, even the same actor ids
    return Seeded(tenant, actors, other, other_actor)


def _db_events(tenant_id: uuid.UUID) -> list[AuditEvent]:
    """The truth, newest first, read around the API."""
    with system_session() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
                               .order_by(AuditEvent.occurred_at.desc(),
                                         AuditEvent.id.desc())))


def _admin(app: Flask, tenant_id: uuid.UUID) -> FlaskClient:
    """A fresh admin per test: the per-user rate limit (100/min) never interferes."""
    return make_client(app, make_session(make_member(tenant_id, Role.admin)))


def _get(client: FlaskClient, **params: Any) -> tuple[int, dict[str, Any]]:
    response = client.get(URL, query_string={k: v for k, v in params.items()
                                             if v is not None})
    return response.status_code, response.get_json(force=True)


def _all(client: FlaskClient, limit: int = 200, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        status, body = _get(client, limit=limit, cursor=cursor, **params)
        assert status == 200, body
        assert len(body["items"]) <= limit
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination never ended")


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


def _key(item: dict[str, Any]) -> tuple[datetime, str]:
    return datetime.fromisoformat(item["occurred_at"]), item["id"]


# --- who may read ------------------------------------------------------------------------


def test_admin_reads_newest_first_in_the_documented_shape(app: Flask, seeded: Seeded) -> None:
    client = _admin(app, seeded.tenant_id)
    items = _all(client)
    truth = _db_events(seeded.tenant_id)
    assert _ids(items) == [str(e.id) for e in truth]
    keys = [_key(i) for i in items]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)
    sample = items[0]
    assert set(sample) == ITEM_FIELDS
    assert set(sample["actor"]) == {"type", "id"} and set(sample["target"]) == {"type", "id"}
    assert sample["severity"] in {"info", "notice", "warning", "critical"}
    seeded_item = next(i for i in items if i["details"] == {"n": 7})
    assert seeded_item["action"] == SEEDS[7 % 4][0]
    assert seeded_item["actor"] == {"type": "user", "id": seeded.actors[7 % 3]}
    assert seeded_item["target"] == {"type": "member", "id": "m-7"}
    assert seeded_item["ip"] == "203.0.113.8"
    assert seeded_item["user_agent"] == "query-test/7"
    assert datetime.fromisoformat(seeded_item["occurred_at"]).utcoffset() == timedelta(0)


@pytest.mark.parametrize("role", [Role.manager, Role.staff, Role.viewonly])
def test_other_roles_are_refused(app: Flask, seeded: Seeded, role: Role) -> None:
    client = make_client(app, make_session(make_member(seeded.tenant_id, role)))
    status, body = _get(client)
    assert status == 403 and body["code"] == "forbidden"
    assert "items" not in body


def test_anonymous_is_401(app: Flask, seeded: Seeded) -> None:
    status, body = _get(make_client(app))
    assert status == 401 and "items" not in body


def test_access_key_needs_the_audit_read_scope(app: Flask, seeded: Seeded) -> None:
    admin = make_session(make_member(seeded.tenant_id, Role.admin))
    with_scope = make_access_key(admin, ["audit:read"]).secret
    without = make_access_key(admin, ["jobs:read", "buckets:read", "billing:read"]).secret

    reader = make_client(app)
    status, body = _get_with_key(reader, with_scope, action="member.invited")
    assert status == 200, body
    truth = [str(e.id) for e in _db_events(seeded.tenant_id) if e.action == "member.invited"]
    assert _ids(body["items"]) == truth[:50]

    status, body = _get_with_key(reader, without)
    assert status == 403 and body["code"] == "insufficient_scope"
    assert "items" not in body


def _get_with_key(client: FlaskClient, key: str, **params: Any) -> tuple[int, dict[str, Any]]:
    response = client.get(URL, query_string=params, headers={"Authorization": f"Bearer {key}"})
    return response.status_code, response.get_json(force=True)


# --- filters -----------------------------------------------------------------------------


def test_each_filter_matches_the_database(app: Flask, seeded: Seeded) -> None:
    client = _admin(app, seeded.tenant_id)
    truth = _db_events(seeded.tenant_id)
    actor = seeded.actors[1]
    cases: list[tuple[dict[str, str], list[AuditEvent]]] = [
        ({"action": "auth.login_failed"}, [e for e in truth if e.action == "auth.login_failed"]),
        ({"actor_id": actor}, [e for e in truth if e.actor_id == actor]),
        ({"severity": "critical"}, [e for e in truth if e.severity == "critical"]),
        ({"severity": "notice", "actor_id": actor},
         [e for e in truth if e.severity == "notice" and e.actor_id == actor]),
        ({"action": "member.invited", "severity": "warning"}, []),
        ({"action": "no.such_action"}, []),
    ]
    for params, expected in cases:
        got = _all(client, limit=9, **params)
        assert _ids(got) == [str(e.id) for e in expected], params
        if "action" in params:
            assert all(i["action"] == params["action"] for i in got)
        if "severity" in params:
            assert all(i["severity"] == params["severity"] for i in got)
        if "actor_id" in params:
            assert all(i["actor"]["id"] == params["actor_id"] for i in got)
    assert len(cases[0][1]) == 15 and len(cases[2][1]) == 15  # the filters had work to do


def test_since_is_inclusive_and_until_exclusive(app: Flask, seeded: Seeded) -> None:
    client = _admin(app, seeded.tenant_id)
    truth = _db_events(seeded.tenant_id)
    pivot = truth[30]
    at = pivot.occurred_at.isoformat()

    since = _all(client, since=at)
    assert _ids(since) == [str(e.id) for e in truth if e.occurred_at >= pivot.occurred_at]
    assert str(pivot.id) in _ids(since)

    until = _all(client, until=at)
    assert _ids(until) == [str(e.id) for e in truth if e.occurred_at < pivot.occurred_at]
    assert str(pivot.id) not in _ids(until)

    exactly = _all(client, since=at,
                   until=(pivot.occurred_at + timedelta(microseconds=1)).isoformat())
    assert _ids(exactly) == [str(pivot.id)]
    assert _all(client, since=at, until=at) == []

    # Any offset is understood: the same instant written in another zone.
    shifted = pivot.occurred_at.astimezone(timezone(timedelta(hours=-3))).isoformat()
    assert _ids(_all(client, since=shifted)) == _ids(since)


@pytest.mark.parametrize("params", [
    {"since": "2024-01-01T00:00:00"},
    {"until": "2030-01-01T12:30:00"},
    {"since": "2024-01-01T00:00:00Z", "until": "2030-01-01T00:00:00"},
    {"since": "yesterday"},
    {"severity": "catastrophic"},
    {"limit": "0"},
    {"limit": "201"},
    {"limit": "-1"},
    {"limit": "ten"},
    {"cursor": "not-a-cursor"},
    {"cursor": "W10"},  # valid base64 of "[]": still not a cursor
    {"surprise": "1"},
])
def test_invalid_queries_are_400(app: Flask, seeded: Seeded, params: dict[str, str]) -> None:
    status, body = _get(_admin(app, seeded.tenant_id), **params)
    assert status == 400, body
    assert "items" not in body and body["status"] == 400


def test_limit_bounds_and_default(app: Flask, seeded: Seeded) -> None:
    client = _admin(app, seeded.tenant_id)
    total = len(_db_events(seeded.tenant_id))
    assert total > 50
    status, body = _get(client)
    assert status == 200 and len(body["items"]) == 50 and body["next_cursor"]
    status, body = _get(client, limit=1)
    assert status == 200 and len(body["items"]) == 1 and body["next_cursor"]
    status, body = _get(client, limit=200)
    assert status == 200 and len(body["items"]) == min(total, 200)
    if total <= 200:
        assert body["next_cursor"] is None


def test_cursor_is_opaque_and_pages_cover_every_row_once(app: Flask, seeded: Seeded) -> None:
    client = _admin(app, seeded.tenant_id)
    truth = [str(e.id) for e in _db_events(seeded.tenant_id)]
    _, first = _get(client, limit=7)
    cursor = first["next_cursor"]
    assert isinstance(cursor, str) and cursor
    last = first["items"][-1]
    for leak in (last["id"], last["occurred_at"], last["occurred_at"][:19], str(seeded.tenant_id)):
        assert leak not in cursor
    paged = _all(client, limit=7)
    assert _ids(paged) == truth
    assert len(set(_ids(paged))) == len(truth)


def test_pages_hold_while_rows_are_inserted(app: Flask, stack: LocalStack) -> None:
    tenant = make_tenant("Busy Audit Co")
    actor = str(uuid.uuid4())
    _seed(tenant, [actor], 45)
    before = [str(e.id) for e in _db_events(tenant)]
    client = _admin(app, tenant)

    inserted: list[int] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            n = 1000
            while not stop.is_set() and n < 1100:
                action, severity = SEEDS[n % len(SEEDS)]
                _record(tenant, action, severity, actor, n)
                inserted.append(n)
                n += 1
                time.sleep(0.005)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        while len(inserted) < 3:
            time.sleep(0.005)
        pages: list[list[dict[str, Any]]] = []
        written_at_page: list[int] = []
        cursor = None
        while True:
            status, body = _get(client, limit=7, cursor=cursor)
            assert status == 200, body
            pages.append(body["items"])
            written_at_page.append(len(inserted))
            cursor = body["next_cursor"]
            if cursor is None:
                break
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(10)
    assert not errors, errors
    assert written_at_page[-1] > written_at_page[0], "rows must be inserted while paging"
    assert len(pages) >= 7

    seen = [item for page in pages for item in page]
    ids = _ids(seen)
    assert len(ids) == len(set(ids)), "a row came back twice"
    missing = set(before) - set(ids)
    assert not missing, f"{len(missing)} rows that existed before paging were skipped"
    keys = [_key(i) for i in seen]
    assert keys == sorted(keys, reverse=True)
    assert set(ids) <= {str(e.id) for e in _db_events(tenant)}


# --- tenant isolation --------------------------------------------------------------------


def test_another_tenants_events_never_appear(app: Flask, seeded: Seeded) -> None:
    ours = {str(e.id) for e in _db_events(seeded.tenant_id)}
    theirs = {str(e.id) for e in _db_events(seeded.other_tenant_id)}
    assert theirs and not ours & theirs

    client = _admin(app, seeded.tenant_id)
    everything = set(_ids(_all(client, limit=13)))
    assert everything == ours
    assert _all(client, actor_id=seeded.other_actor) == []
    shared_actor = set(_ids(_all(client, actor_id=seeded.actors[0])))
    assert shared_actor and not shared_actor & theirs

    # A cursor taken from the other tenant's pages still shows only our own rows.
    other_client = _admin(app, seeded.other_tenant_id)
    status, their_page = _get(other_client, limit=2)
    assert status == 200 and not set(_ids(their_page["items"])) & ours
    status, mixed = _get(client, limit=200, cursor=their_page["next_cursor"])
    assert status == 200
    assert set(_ids(mixed["items"])) <= ours
