"""GET /api/v1/usage?from=&to=: one item per bucket and day that has a storage record or
egress, for the tenant's admins and managers (and keys with ``billing:read``); dates checked;
keyset pages that cover every row once; never another tenant's buckets."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from devstack.stack import LocalStack
from portcullis.accounts.models import Role
from portcullis.db import system_session
from portcullis.storage.models import EgressDaily
from tests.app.billing.helpers import admin_client, all_pages
from tests.support.factories import (
    make_access_key,
    make_bucket,
    make_member,
    make_session,
    make_tenant,
    record_usage,
)
from tests.support.web import make_client, problem_code

URL = "/api/v1/usage"
ITEM_FIELDS = {"date", "bucket_id", "bytes", "objects", "egress_bytes"}
# Usage dates no billing run of the suite covers (2021 is this module's).
RANGE = {"from": "2021-03-01", "to": "2021-03-10"}


@dataclass
class Seeded:
    tenant_id: uuid.UUID
    first: uuid.UUID
    second: uuid.UUID
    expected: list[dict[str, Any]]
    other_tenant_id: uuid.UUID
    other_bucket: uuid.UUID


def _egress_only(tenant_id: uuid.UUID, bucket_id: uuid.UUID, day: date, size: int) -> None:
    """Bytes served on a day the collection recorded nothing for the bucket."""
    with system_session() as db:
        db.add(EgressDaily(tenant_id=tenant_id, bucket_id=bucket_id, day=day, bytes=size))


def _item(day: str, bucket: uuid.UUID, size: int, objects: int, egress: int) -> dict[str, Any]:
    return {"date": day, "bucket_id": str(bucket), "bytes": size, "objects": objects,
            "egress_bytes": egress}


@pytest.fixture(scope="module")
def seeded(stack: LocalStack) -> Seeded:
    tenant = make_tenant("Usage Co")
    first, second = make_bucket(tenant), make_bucket(tenant)
    record_usage(tenant, first, date(2021, 3, 1), 5, bytes_per_day=1000, objects=2)
    record_usage(tenant, second, date(2021, 3, 3), 2, bytes_per_day=500, objects=1,
                 egress_per_day=7)
    _egress_only(tenant, first, date(2021, 3, 7), 123)
    record_usage(tenant, first, date(2021, 2, 28), 1, bytes_per_day=9)  # before the range
    record_usage(tenant, second, date(2021, 3, 11), 1, bytes_per_day=9)  # after it

    other = make_tenant("Usage Other Co")
    other_bucket = make_bucket(other)
    record_usage(other, other_bucket, date(2021, 3, 1), 10, bytes_per_day=4242, objects=3,
                 egress_per_day=11)

    rows = [_item(f"2021-03-0{d}", first, 1000, 2, 0) for d in range(1, 6)]
    rows += [_item(f"2021-03-0{d}", second, 500, 1, 7) for d in (3, 4)]
    rows.append(_item("2021-03-07", first, 0, 0, 123))
    expected = sorted(rows, key=lambda i: (i["date"], i["bucket_id"]))
    return Seeded(tenant, first, second, expected, other, other_bucket)


def test_one_item_per_bucket_and_day_in_order(app: Flask, seeded: Seeded) -> None:
    response = admin_client(app, seeded.tenant_id).get(URL, query_string=RANGE)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"items", "next_cursor"} and body["next_cursor"] is None
    assert body["items"] == seeded.expected
    assert all(set(item) == ITEM_FIELDS for item in body["items"])


def test_a_day_with_egress_only_answers_zero_storage(app: Flask, seeded: Seeded) -> None:
    items = admin_client(app, seeded.tenant_id).get(
        URL, query_string={"from": "2021-03-07", "to": "2021-03-07"}).get_json()["items"]
    assert items == [_item("2021-03-07", seeded.first, 0, 0, 123)]


def test_both_ends_are_included(app: Flask, seeded: Seeded) -> None:
    client = admin_client(app, seeded.tenant_id)
    items = client.get(URL, query_string={"from": "2021-02-28", "to": "2021-03-11"}
                       ).get_json()["items"]
    assert items[0] == _item("2021-02-28", seeded.first, 9, 0, 0)
    assert items[-1] == _item("2021-03-11", seeded.second, 9, 0, 0)
    assert items[1:-1] == seeded.expected


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
def test_pages_cover_every_row_once(app: Flask, seeded: Seeded, limit: int) -> None:
    items = all_pages(admin_client(app, seeded.tenant_id), URL, limit, params=RANGE)
    assert items == seeded.expected


def test_the_default_page_is_50(app: Flask, stack: LocalStack) -> None:
    tenant = make_tenant("Usage Pages Co")
    record_usage(tenant, make_bucket(tenant), date(2021, 5, 1), 60, bytes_per_day=1)
    client = admin_client(app, tenant)
    query = {"from": "2021-05-01", "to": "2021-06-29"}
    body = client.get(URL, query_string=query).get_json()
    assert len(body["items"]) == 50 and body["next_cursor"]
    rest = client.get(URL, query_string={**query, "cursor": body["next_cursor"]}).get_json()
    assert len(rest["items"]) == 10 and rest["next_cursor"] is None
    assert rest["items"][0]["date"] == "2021-06-20"


def test_the_default_window_is_the_last_30_days(app: Flask, stack: LocalStack) -> None:
    tenant = make_tenant("Usage Window Co")
    bucket = make_bucket(tenant)
    today = datetime.now(UTC).date()
    for days_ago in (30, 29, 0):
        record_usage(tenant, bucket, today - timedelta(days=days_ago), 1,
                     bytes_per_day=days_ago + 1)
    response = admin_client(app, tenant).get(URL)
    assert response.status_code == 200, response.get_json()
    assert [i["date"] for i in response.get_json()["items"]] == [
        (today - timedelta(days=29)).isoformat(), today.isoformat()]


def test_only_to_given_answers_the_30_days_before_it(app: Flask, seeded: Seeded) -> None:
    client = admin_client(app, seeded.tenant_id)
    items = client.get(URL, query_string={"to": "2021-03-30"}).get_json()["items"]
    assert items == [*seeded.expected, _item("2021-03-11", seeded.second, 9, 0, 0)]
    # At the very start of the calendar the window is shorter, never a 500.
    response = client.get(URL, query_string={"to": "0001-01-05"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("query", [
    {"from": "2021-02-30", "to": "2021-03-10"},  # no such day
    {"from": "2021-03-01", "to": "yesterday"},
    {"from": "01/03/2021", "to": "2021-03-10"},
    {"from": "2021-03-10", "to": "2021-03-01"},  # to before from
    {"from": "2020-03-01", "to": "2021-03-02"},  # 367 days
    {"from": "2021-03-01", "to": "2021-03-10", "limit": "0"},
    {"from": "2021-03-01", "to": "2021-03-10", "limit": "201"},
    {"from": "2021-03-01", "to": "2021-03-10", "limit": "ten"},
    {"from": "2021-03-01", "to": "2021-03-10", "cursor": "not-a-cursor"},
    {"from": "2021-03-01", "to": "2021-03-10", "bucket": "all"},  # unknown parameter
])
def test_invalid_queries_are_400(app: Flask, seeded: Seeded, query: dict[str, str]) -> None:
    response = admin_client(app, seeded.tenant_id).get(URL, query_string=query)
    assert response.status_code == 400, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert "items" not in response.get_json()


def test_366_days_at_once_are_allowed(app: Flask, seeded: Seeded) -> None:
    response = admin_client(app, seeded.tenant_id).get(
        URL, query_string={"from": "2020-03-10", "to": "2021-03-10"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["items"][-len(seeded.expected):] == seeded.expected


# --- who may read ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.admin, Role.manager])
def test_admins_and_managers_read(app: Flask, seeded: Seeded, role: Role) -> None:
    response = admin_client(app, seeded.tenant_id, role).get(URL, query_string=RANGE)
    assert response.status_code == 200 and response.get_json()["items"] == seeded.expected


@pytest.mark.parametrize("role", [Role.staff, Role.viewonly])
def test_other_roles_are_refused(app: Flask, seeded: Seeded, role: Role) -> None:
    response = admin_client(app, seeded.tenant_id, role).get(URL, query_string=RANGE)
    assert response.status_code == 403 and problem_code(response) == "forbidden"
    assert "items" not in response.get_json()


def test_an_access_key_needs_the_billing_read_scope(app: Flask, seeded: Seeded) -> None:
    admin = make_session(make_member(seeded.tenant_id, Role.admin))
    client = make_client(app)
    allowed = make_access_key(admin, ["billing:read"])
    response = client.get(URL, query_string=RANGE, headers=allowed.bearer)
    assert response.status_code == 200 and response.get_json()["items"] == seeded.expected
    paged = all_pages(client, URL, 3, headers=allowed.bearer, params=RANGE)
    assert paged == seeded.expected

    lacking = make_access_key(admin, ["jobs:read", "audit:read", "buckets:read", "files:read"])
    refused = client.get(URL, query_string=RANGE, headers=lacking.bearer)
    assert refused.status_code == 403 and problem_code(refused) == "insufficient_scope"


def test_a_key_acts_with_its_creators_role(app: Flask, seeded: Seeded) -> None:
    staff = make_member(seeded.tenant_id, Role.staff)
    key = make_access_key(staff, ["billing:read"])
    response = make_client(app).get(URL, query_string=RANGE, headers=key.bearer)
    assert response.status_code == 403 and problem_code(response) == "forbidden"


def test_anonymous_is_401(app: Flask, seeded: Seeded) -> None:
    assert make_client(app).get(URL, query_string=RANGE).status_code == 401


def test_another_tenants_usage_never_appears(app: Flask, seeded: Seeded) -> None:
    ours = all_pages(admin_client(app, seeded.tenant_id), URL, 200, params=RANGE)
    assert str(seeded.other_bucket) not in {i["bucket_id"] for i in ours}

    theirs = all_pages(admin_client(app, seeded.other_tenant_id), URL, 200, params=RANGE)
    assert {i["bucket_id"] for i in theirs} == {str(seeded.other_bucket)}
    assert len(theirs) == 10
    assert all(i["bytes"] == 4242 and i["egress_bytes"] == 11 for i in theirs)

    # A tenant with no usage answers an empty list, not somebody else's.
    empty = admin_client(app, make_tenant("Usage Empty Co")).get(URL, query_string=RANGE)
    assert empty.status_code == 200 and empty.get_json() == {"items": [], "next_cursor": None}
