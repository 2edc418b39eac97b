"""GET /buckets and GET /buckets/{id}/files are cursor-paginated (API.md's Conventions):
``limit`` 1..200, an opaque ``cursor``, every row once, bad parameters 400."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portcullis.accounts.models import Role
from tests.support import media
from tests.support.cursors import WRONG_TYPES
from tests.support.factories import (
    LoggedIn,
    make_bucket,
    make_file,
    make_member,
    make_session,
    make_tenant,
)

pytestmark = pytest.mark.usefixtures("stack")


def _walk(client: FlaskClient, url: str, limit: int) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(50):
        query = f"limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(f"{url}?{query}")
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert len(body["items"]) <= limit
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
        assert len(body["items"]) == limit, "only the last page may be short"
    raise AssertionError("pagination does not end")


@pytest.fixture(scope="module")
def tenant(stack: object) -> tuple[LoggedIn, list[str], str, list[str]]:
    """An admin, their 5 buckets, and 5 clean files in the first one."""
    admin = make_session(make_member(make_tenant("Paging Storage"), Role.admin))
    buckets = [str(make_bucket(admin)) for _ in range(5)]
    files = [str(make_file(admin, buckets[0], media.png(color=(n, 40, 90))).id) for n in range(5)]
    return admin, buckets, buckets[0], files


LISTS: dict[str, Callable[[tuple[LoggedIn, list[str], str, list[str]]], tuple[str, list[str]]]]
LISTS = {"buckets": lambda t: ("/api/v1/buckets", t[1]),
         "files": lambda t: (f"/api/v1/buckets/{t[2]}/files", t[3])}


@pytest.mark.parametrize("which", list(LISTS))
@pytest.mark.parametrize("limit", [1, 2, 5])
def test_pages_hold_every_row_once(app: Flask, tenant: tuple, which: str, limit: int) -> None:
    url, expected = LISTS[which](tenant)
    client, _ = media.session_client(app, tenant[0])
    seen = _walk(client, url, limit)
    assert len(seen) == len(set(seen)), "a row appeared twice"
    assert set(seen) == set(expected)
    whole = client.get(f"{url}?limit=200").get_json()
    assert whole["next_cursor"] is None and [i["id"] for i in whole["items"]] == seen


@pytest.mark.parametrize("which", list(LISTS))
@pytest.mark.parametrize(("query", "code"), [
    ("limit=0", "validation_error"), ("limit=201", "validation_error"),
    ("limit=x", "validation_error"), ("cursor=not-a-cursor!!", "invalid_cursor"),
])
def test_bad_page_parameters_are_400(app: Flask, tenant: tuple, which: str, query: str,
                                     code: str) -> None:
    url, _ = LISTS[which](tenant)
    client, _ = media.session_client(app, tenant[0])
    response = client.get(f"{url}?{query}")
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["code"] == code


@pytest.mark.parametrize("which", list(LISTS))
@pytest.mark.parametrize("cursor", WRONG_TYPES)
def test_a_cursor_of_the_wrong_shape_is_400(app: Flask, tenant: tuple, which: str,
                                            cursor: str) -> None:
    url, _ = LISTS[which](tenant)
    client, _ = media.session_client(app, tenant[0])
    response = client.get(f"{url}?cursor={cursor}")
    assert response.status_code == 400, response.get_json()
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.get_json()["code"] == "invalid_cursor"
