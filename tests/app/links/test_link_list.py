"""``GET /api/v1/files/{id}/links``: a file's links for anyone who may read it, newest first,
cursor-paginated, with their rules and counts and never a token or URL."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest

from portcullis.accounts.models import Role
from tests.support.factories import (
    LoggedIn,
    StoredFile,
    grant,
    make_bucket,
    make_file,
    make_file_link,
    make_member,
    make_session,
    make_tenant,
)
from tests.support.web import ClientFor, csrf_headers, problem_code

pytestmark = pytest.mark.usefixtures("stack")

FIELDS = {"id", "created_at", "expires_at", "revoked_at", "max_downloads", "downloads",
          "password_protected", "allowed_ips", "created_by"}


@pytest.fixture(scope="module")
def tenant(stack: object) -> uuid.UUID:
    return make_tenant("Link List Co")


@pytest.fixture(scope="module")
def admin(tenant: uuid.UUID) -> LoggedIn:
    return make_session(make_member(tenant, Role.admin))


@pytest.fixture(scope="module")
def stored(admin: LoggedIn) -> StoredFile:
    return make_file(admin.member, make_bucket(admin.member), b"listed")


def _page(client_for: ClientFor, who: LoggedIn, file_id: uuid.UUID,
          query: str = "") -> tuple[int, Any]:
    response = client_for(who).get(f"/api/v1/files/{file_id}/links{query}")
    return response.status_code, response.get_json()


def test_a_files_links_newest_first_without_tokens(client_for: ClientFor, admin: LoggedIn,
                                                   stored: StoredFile) -> None:
    client = client_for(admin)
    url = f"/api/v1/files/{stored.id}/links"
    plain = client.post(url, json={}, headers=csrf_headers(admin)).get_json()
    hardened = client.post(url, json={"max_downloads": 4, "password": "twelve chars!",
                                      "allowed_ips": ["192.0.2.0/24"]},
                           headers=csrf_headers(admin)).get_json()
    revoked = client.post(url, json={}, headers=csrf_headers(admin)).get_json()
    assert client.delete(f"/api/v1/links/{revoked['id']}",
                         headers=csrf_headers(admin)).status_code == 204
    assert client_for(ip="192.0.2.9").get(
        f"/s/{hardened['token']}", headers={"Authorization": "Basic eDp0d2VsdmUgY2hhcnMh"}
    ).status_code == 200  # x:twelve chars!
    other_file = make_file(admin.member, stored.bucket_id, b"elsewhere")
    make_file_link(other_file, created_by=admin.member.user_id)

    response = client.get(url)
    assert response.status_code == 200
    body = response.get_json()
    assert body["next_cursor"] is None
    assert [item["id"] for item in body["items"]] == [revoked["id"], hardened["id"],
                                                      plain["id"]]
    for item in body["items"]:
        assert set(item) == FIELDS
        assert item["created_by"] == str(admin.member.user_id)
    by_id = {item["id"]: item for item in body["items"]}
    assert by_id[hardened["id"]] | {"id": None, "created_at": None, "expires_at": None} == {
        "id": None, "created_at": None, "expires_at": None, "revoked_at": None,
        "max_downloads": 4, "downloads": 1, "password_protected": True,
        "allowed_ips": ["192.0.2.0/24"], "created_by": str(admin.member.user_id)}
    assert by_id[plain["id"]]["password_protected"] is False
    assert by_id[plain["id"]]["max_downloads"] is None
    assert by_id[plain["id"]]["allowed_ips"] is None
    assert datetime.fromisoformat(by_id[revoked["id"]]["revoked_at"])
    text = response.get_data(as_text=True)
    for created in (plain, hardened, revoked):
        assert created["token"] not in text and created["url"] not in text
    assert "/s/" not in text


def test_the_list_is_cursor_paginated(client_for: ClientFor, admin: LoggedIn) -> None:
    file = make_file(admin.member, make_bucket(admin.member), b"paged")
    made = [make_file_link(file, created_by=admin.member.user_id).id for _ in range(5)]
    seen: list[str] = []
    query = "?limit=2"
    while True:
        status, body = _page(client_for, admin, file.id, query)
        assert status == 200 and len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        if body["next_cursor"] is None:
            break
        query = f"?limit=2&cursor={body['next_cursor']}"
    assert sorted(seen) == sorted(str(i) for i in made) and len(seen) == 5
    for bad in ("?limit=0", "?limit=201", "?cursor=not-a-cursor"):
        status, body = _page(client_for, admin, file.id, bad)
        assert status == 400, bad


def test_only_readers_of_the_file_see_its_links(client_for: ClientFor, tenant: uuid.UUID,
                                                admin: LoggedIn, stored: StoredFile) -> None:
    make_file_link(stored, created_by=admin.member.user_id)
    outsider = make_session(make_member(tenant, Role.staff))  # no grant on the bucket
    status, body = _page(client_for, outsider, stored.id)
    assert status == 404 and body["code"] == "not_found"
    reader = make_session(make_member(tenant, Role.viewonly))
    grant(stored.bucket_id, reader, read=True)
    status, body = _page(client_for, reader, stored.id)
    assert status == 200 and body["items"]
    stranger = make_session(make_member(make_tenant("Other Link Co"), Role.admin))
    status, body = _page(client_for, stranger, stored.id)  # another tenant's file
    assert status == 404 and body["code"] == "not_found"
    response = client_for(stranger).get(f"/api/v1/files/{uuid.uuid4()}/links")
    assert response.status_code == 404 and problem_code(response) == "not_found"
