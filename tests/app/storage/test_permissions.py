"""API.md's bucket table, route by route and role by role: who may list, create, delete,
grant, set lifecycles, upload, read uploads, list, delete and share files; access-key scopes;
and that another tenant's ids are 404 everywhere."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from flask import Flask

from devstack.stack import LocalStack
from portcullis.accounts.models import Role
from tests.support import media
from tests.support.factories import (
    LoggedIn,
    grant,
    make_access_key,
    make_bucket,
    make_file,
    make_member,
    make_session,
    make_tenant,
)
from tests.support.web import problem_code

pytestmark = pytest.mark.usefixtures("worker")

ROLES = (Role.admin, Role.manager, Role.staff, Role.viewonly)


@dataclass
class Org:
    tenant_id: uuid.UUID
    people: dict[Role, LoggedIn]
    buckets: dict[str, str]  # private, read, write, full -> bucket id
    files: dict[str, str]  # same keys -> a file id in that bucket
    upload_id: str  # an upload by the admin
    uploads: dict[str, str]  # same keys -> the admin's upload in that bucket

    def fresh(self, role: Role) -> LoggedIn:
        """Another member of the role (each identity has its own rate limit)."""
        return make_session(make_member(self.tenant_id, role))


def _grant(app: Flask, admin: LoggedIn, bucket: str, member: LoggedIn, read: bool,
           write: bool = False, delete: bool = False) -> None:
    client, headers = media.session_client(app, admin)
    response = client.put(f"/api/v1/buckets/{bucket}/permissions/{member.member.membership_id}",
                          json={"read": read, "write": write, "delete": delete}, headers=headers)
    assert response.status_code == 200, response.get_json()


def _build_org(name: str) -> Org:
    """A tenant with one member per role, four buckets granted as their names say and a clean
    file (uploaded by the admin) in each, built by the factories: the routes are the test."""
    tenant = make_tenant(name)
    people = {role: make_session(make_member(tenant, role)) for role in ROLES}
    admin = people[Role.admin]
    buckets = {kind: str(make_bucket(admin, f"{kind}-{uuid.uuid4().hex[:10]}"))
               for kind in ("private", "read", "write", "full")}
    staff, viewonly = people[Role.staff], people[Role.viewonly]
    grant(buckets["read"], staff)
    grant(buckets["write"], staff, write=True)
    grant(buckets["full"], staff, write=True, delete=True)
    grant(buckets["read"], viewonly)
    stored = {kind: make_file(admin, bucket, media.png(color=(n, 9, 9)), filename=f"{kind}.png")
              for n, (kind, bucket) in enumerate(buckets.items())}
    uploads = {kind: str(file.upload_id) for kind, file in stored.items()}
    return Org(tenant, people, buckets, {kind: str(file.id) for kind, file in stored.items()},
               uploads["private"], uploads)


@pytest.fixture(scope="module")
def org(stack: LocalStack) -> Org:
    return _build_org("Perms A")


@pytest.fixture(scope="module")
def other(stack: LocalStack) -> Org:
    return _build_org("Perms B")


# -- listing and bucket administration -------------------------------------------------------

def test_bucket_listing_shows_only_readable_buckets(app: Flask, org: Org) -> None:
    everything = set(org.buckets.values())
    expected = {
        Role.admin: everything,
        Role.manager: everything,
        Role.staff: {org.buckets["read"], org.buckets["write"], org.buckets["full"]},
        Role.viewonly: {org.buckets["read"]},
    }
    for role, who in org.people.items():
        client, _ = media.session_client(app, who)
        response = client.get("/api/v1/buckets?limit=200")
        assert response.status_code == 200, (role, response.get_json())
        assert {b["id"] for b in response.get_json()["items"]} == expected[role], role


@pytest.mark.parametrize(("role", "status"), [(Role.admin, 201), (Role.manager, 201),
                                              (Role.staff, 403), (Role.viewonly, 403)])
def test_create_bucket_by_role(app: Flask, org: Org, role: Role, status: int) -> None:
    client, headers = media.session_client(app, org.people[role])
    response = client.post("/api/v1/buckets", json={"name": f"new-{uuid.uuid4().hex[:8]}"},
                           headers=headers)
    assert response.status_code == status, response.get_json()
    if status == 403:
        assert problem_code(response) == "forbidden"
    else:
        assert set(response.get_json()) >= {"id", "name", "created_at", "bytes", "objects"}


def test_create_bucket_validates_the_name(app: Flask, org: Org) -> None:
    client, headers = media.session_client(app, org.fresh(Role.admin))
    for name in ("ab", "x" * 64, "Upper", "under_score", "dot.name", "sp ace"):
        response = client.post("/api/v1/buckets", json={"name": name}, headers=headers)
        assert response.status_code == 400, name
    name = f"dup-{uuid.uuid4().hex[:8]}"
    assert client.post("/api/v1/buckets", json={"name": name}, headers=headers).status_code == 201
    again = client.post("/api/v1/buckets", json={"name": name}, headers=headers)
    assert again.status_code == 409


def test_delete_bucket_is_admin_only_and_needs_it_empty(app: Flask, org: Org) -> None:
    admin = org.fresh(Role.admin)
    client, headers = media.session_client(app, admin)
    empty = media.create_bucket(client, headers, "empty")
    staff, viewonly = org.fresh(Role.staff), org.fresh(Role.viewonly)
    for who in (staff, viewonly):  # no grant: the bucket does not exist for them
        other_client, other_headers = media.session_client(app, who)
        response = other_client.delete(f"/api/v1/buckets/{empty}", headers=other_headers)
        assert response.status_code == 404, who.member.role
        assert problem_code(response) == "not_found", who.member.role
        _grant(app, admin, empty, who, True)
    for who in (org.people[Role.manager], staff, viewonly):  # readers, but not admins
        other_client, other_headers = media.session_client(app, who)
        response = other_client.delete(f"/api/v1/buckets/{empty}", headers=other_headers)
        assert response.status_code == 403, who.member.role
        assert problem_code(response) == "forbidden", who.member.role
    busy = client.delete(f"/api/v1/buckets/{org.buckets['read']}", headers=headers)
    assert busy.status_code == 409 and problem_code(busy) == "bucket_not_empty"
    assert client.delete(f"/api/v1/buckets/{empty}", headers=headers).status_code == 204
    assert client.delete(f"/api/v1/buckets/{empty}", headers=headers).status_code == 404
    listed = {b["id"] for b in client.get("/api/v1/buckets?limit=200").get_json()["items"]}
    assert empty not in listed and org.buckets["read"] in listed


@pytest.mark.parametrize(("role", "status"), [(Role.admin, 200), (Role.manager, 200),
                                              (Role.staff, 403), (Role.viewonly, 403)])
def test_put_permissions_by_role(app: Flask, org: Org, role: Role, status: int) -> None:
    target = org.fresh(Role.staff)
    client, headers = media.session_client(app, org.people[role])
    response = client.put(
        f"/api/v1/buckets/{org.buckets['read']}/permissions/{target.member.membership_id}",
        json={"read": True, "write": False, "delete": False}, headers=headers)
    assert response.status_code == status, response.get_json()
    target_client, _ = media.session_client(app, target)
    sees = target_client.get(f"/api/v1/buckets/{org.buckets['read']}/files")
    assert sees.status_code == (200 if status == 200 else 404)


def test_viewonly_can_be_granted_read_only(app: Flask, org: Org) -> None:
    viewer = org.fresh(Role.viewonly)
    client, headers = media.session_client(app, org.fresh(Role.manager))
    url = f"/api/v1/buckets/{org.buckets['write']}/permissions/{viewer.member.membership_id}"
    for rights in ({"read": True, "write": True, "delete": False},
                   {"read": True, "write": False, "delete": True},
                   {"read": True, "write": True, "delete": True}):
        response = client.put(url, json=rights, headers=headers)
        assert response.status_code == 400, (rights, response.get_json())
    ok = client.put(url, json={"read": True, "write": False, "delete": False}, headers=headers)
    assert ok.status_code == 200
    assert ok.get_json() == {"bucket_id": org.buckets["write"],
                             "member_id": str(viewer.member.membership_id),
                             "read": True, "write": False, "delete": False}
    viewer_client, viewer_headers = media.session_client(app, viewer)
    upload = media.post_upload(viewer_client, viewer_headers, org.buckets["write"], "v.png",
                               "image/png", media.png())
    assert upload.status_code == 403


def test_put_permissions_rejects_unknown_members_and_bad_bodies(app: Flask, org: Org) -> None:
    client, headers = media.session_client(app, org.fresh(Role.admin))
    base = f"/api/v1/buckets/{org.buckets['read']}/permissions"
    unknown = client.put(f"{base}/{uuid.uuid4()}",
                         json={"read": True, "write": False, "delete": False}, headers=headers)
    assert unknown.status_code == 404
    member = org.people[Role.staff].member.membership_id
    for body in ({"read": True}, {"read": True, "write": False, "delete": False, "x": 1},
                 {"read": False, "write": True, "delete": False}):
        assert client.put(f"{base}/{member}", json=body, headers=headers).status_code == 400


@pytest.mark.parametrize(("role", "status"), [(Role.admin, 200), (Role.manager, 200),
                                              (Role.staff, 403), (Role.viewonly, 403)])
def test_put_lifecycle_by_role(app: Flask, org: Org, role: Role, status: int) -> None:
    client, headers = media.session_client(app, org.people[role])
    response = client.put(f"/api/v1/buckets/{org.buckets['read']}/lifecycle",
                          json={"expire_after_days": 3650}, headers=headers)
    assert response.status_code == status, response.get_json()
    if status == 200:
        assert response.get_json() == {"bucket_id": org.buckets["read"],
                                       "expire_after_days": 3650}
        cleared = client.put(f"/api/v1/buckets/{org.buckets['read']}/lifecycle",
                             json={"expire_after_days": None}, headers=headers)
        assert cleared.status_code == 200 and cleared.get_json()["expire_after_days"] is None
        for bad in (0, 3651, -1, "forever", 1.5):
            assert client.put(f"/api/v1/buckets/{org.buckets['read']}/lifecycle",
                              json={"expire_after_days": bad}, headers=headers
                              ).status_code == 400, bad


# -- staff and viewonly on files -------------------------------------------------------------

def test_staff_without_read_sees_nothing(app: Flask, org: Org) -> None:
    client, headers = media.session_client(app, org.people[Role.staff])
    bucket, file_id = org.buckets["private"], org.files["private"]
    assert client.get(f"/api/v1/buckets/{bucket}/files").status_code == 404
    assert media.post_upload(client, headers, bucket, "x.png", "image/png",
                             media.png()).status_code == 404
    assert client.post(f"/api/v1/files/{file_id}/links", json={},
                       headers=headers).status_code == 404
    assert client.delete(f"/api/v1/files/{file_id}", headers=headers).status_code == 404
    # visibility first: a hidden bucket is 404 even on routes their role may not use
    assert client.put(f"/api/v1/buckets/{bucket}/lifecycle", json={"expire_after_days": 1},
                      headers=headers).status_code == 404
    colleague = org.people[Role.staff].member.membership_id
    grant_url = f"/api/v1/buckets/{bucket}/permissions/{colleague}"
    assert client.put(grant_url, json={"read": True, "write": True, "delete": True},
                      headers=headers).status_code == 404
    assert client.delete(f"/api/v1/buckets/{bucket}", headers=headers).status_code == 404


def test_staff_rights_follow_the_grants(app: Flask, org: Org) -> None:
    client, headers = media.session_client(app, org.people[Role.staff])
    # read only: list and share, not upload or delete
    assert client.get(f"/api/v1/buckets/{org.buckets['read']}/files").status_code == 200
    refused = media.post_upload(client, headers, org.buckets["read"], "x.png", "image/png",
                                media.png())
    assert refused.status_code == 403 and problem_code(refused) == "forbidden"
    link = client.post(f"/api/v1/files/{org.files['read']}/links", json={}, headers=headers)
    assert link.status_code == 201
    no_delete = client.delete(f"/api/v1/files/{org.files['read']}", headers=headers)
    assert no_delete.status_code == 403 and problem_code(no_delete) == "forbidden"
    # read + write: upload, still no delete
    accepted = media.post_upload(client, headers, org.buckets["write"], "w.png", "image/png",
                                 media.png(color=(1, 1, 1)))
    assert accepted.status_code == 202, accepted.get_json()
    assert client.delete(f"/api/v1/files/{org.files['write']}",
                         headers=headers).status_code == 403
    # read + write + delete: may delete
    assert client.delete(f"/api/v1/files/{org.files['full']}", headers=headers).status_code == 204
    assert client.delete(f"/api/v1/files/{org.files['full']}", headers=headers).status_code == 404
    media.wait_uploads([accepted.get_json()["id"]])


def test_viewonly_with_read_lists_and_shares_only(app: Flask, org: Org) -> None:
    client, headers = media.session_client(app, org.people[Role.viewonly])
    listed = client.get(f"/api/v1/buckets/{org.buckets['read']}/files")
    assert listed.status_code == 200
    assert org.files["read"] in {f["id"] for f in listed.get_json()["items"]}
    link = client.post(f"/api/v1/files/{org.files['read']}/links", json={"expires_in": 60},
                       headers=headers)
    assert link.status_code == 201, link.get_json()
    assert media.post_upload(client, headers, org.buckets["read"], "x.png", "image/png",
                             media.png()).status_code == 403
    assert client.delete(f"/api/v1/files/{org.files['read']}",
                         headers=headers).status_code == 403
    assert client.get(f"/api/v1/buckets/{org.buckets['write']}/files").status_code == 404


def test_delete_needs_delete_permission(app: Flask, org: Org) -> None:
    admin_client, admin_headers = media.session_client(app, org.fresh(Role.admin))
    file_id = media.clean_files(admin_client, admin_headers, org.buckets["write"], 1)[0]
    staff = org.fresh(Role.staff)
    _grant(app, org.people[Role.admin], org.buckets["write"], staff, True, write=True)
    client, headers = media.session_client(app, staff)
    assert client.delete(f"/api/v1/files/{file_id}", headers=headers).status_code == 403
    _grant(app, org.people[Role.admin], org.buckets["write"], staff, True, write=True,
           delete=True)
    assert client.delete(f"/api/v1/files/{file_id}", headers=headers).status_code == 204
    assert media.file_row(file_id) is None


def test_upload_is_visible_to_its_uploader_and_admins_only(app: Flask, org: Org) -> None:
    staff = org.fresh(Role.staff)
    _grant(app, org.people[Role.admin], org.buckets["write"], staff, True, write=True)
    client, headers = media.session_client(app, staff)
    response = media.post_upload(client, headers, org.buckets["write"], "mine.png", "image/png",
                                 media.png(color=(5, 5, 5)))
    assert response.status_code == 202
    upload_id = response.get_json()["id"]
    assert client.get(f"/api/v1/uploads/{upload_id}").status_code == 200
    admin_client, _ = media.session_client(app, org.fresh(Role.admin))
    assert admin_client.get(f"/api/v1/uploads/{upload_id}").status_code == 200
    for role in (Role.manager, Role.staff, Role.viewonly):
        other_client, _ = media.session_client(app, org.people[role])
        assert other_client.get(f"/api/v1/uploads/{upload_id}").status_code == 404, role
    media.wait_uploads([upload_id])


def test_link_revocation_is_for_its_creator_or_an_admin(app: Flask, org: Org) -> None:
    staff = org.people[Role.staff]
    client, headers = media.session_client(app, staff)
    link = client.post(f"/api/v1/files/{org.files['read']}/links", json={}, headers=headers)
    assert link.status_code == 201
    link_id = link.get_json()["id"]
    for role in (Role.manager, Role.viewonly):  # they read the bucket, so they see its links
        other_client, other_headers = media.session_client(app, org.people[role])
        refused = other_client.delete(f"/api/v1/links/{link_id}", headers=other_headers)
        assert refused.status_code == 403 and problem_code(refused) == "forbidden", role
    stranger_client, stranger_headers = media.session_client(app, org.fresh(Role.staff))  # no read
    hidden = stranger_client.delete(f"/api/v1/links/{link_id}", headers=stranger_headers)
    assert hidden.status_code == 404 and problem_code(hidden) == "not_found"
    assert client.delete(f"/api/v1/links/{link_id}", headers=headers).status_code == 204
    second = client.post(f"/api/v1/files/{org.files['read']}/links", json={}, headers=headers)
    admin_client, admin_headers = media.session_client(app, org.fresh(Role.admin))
    assert admin_client.delete(f"/api/v1/links/{second.get_json()['id']}",
                               headers=admin_headers).status_code == 204


# -- visibility first, then role and permission, on every object route ----------------------

OBJECT_ROUTES = ("delete_bucket", "permissions", "lifecycle", "upload", "get_upload",
                 "list_files", "delete_file", "create_link", "revoke_link")


def _object_call(app: Flask, who: LoggedIn, route: str, bucket: str, file_id: str,
                 upload_id: str, link_id: str) -> object:
    """One call to ``route`` on the given objects; every write is one the caller may not
    make (or may, harmlessly: listing and sharing), so the org is left as it was."""
    client, headers = media.session_client(app, who)
    if route == "delete_bucket":
        return client.delete(f"/api/v1/buckets/{bucket}", headers=headers)
    if route == "permissions":
        return client.put(f"/api/v1/buckets/{bucket}/permissions/{who.member.membership_id}",
                          json={"read": True, "write": False, "delete": False},
                          headers=headers)
    if route == "lifecycle":
        return client.put(f"/api/v1/buckets/{bucket}/lifecycle",
                          json={"expire_after_days": 1}, headers=headers)
    if route == "upload":
        return media.post_upload(client, headers, bucket, "m.png", "image/png", media.png())
    if route == "get_upload":
        return client.get(f"/api/v1/uploads/{upload_id}")
    if route == "list_files":
        return client.get(f"/api/v1/buckets/{bucket}/files")
    if route == "delete_file":
        return client.delete(f"/api/v1/files/{file_id}", headers=headers)
    if route == "create_link":
        return client.post(f"/api/v1/files/{file_id}/links", json={}, headers=headers)
    if route == "revoke_link":
        return client.delete(f"/api/v1/links/{link_id}", headers=headers)
    raise AssertionError(route)


@pytest.fixture(scope="module")
def admin_links(app: Flask, org: Org) -> dict[str, str]:
    """A link by the admin on the private and the read bucket's file (kind -> link id)."""
    return {kind: _link_id(app, org.people[Role.admin], org.files[kind])
            for kind in ("private", "read")}


def _link_id(app: Flask, who: LoggedIn, file_id: str) -> str:
    client, headers = media.session_client(app, who)
    response = client.post(f"/api/v1/files/{file_id}/links", json={}, headers=headers)
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["id"])


# A reader of the bucket who holds nothing else: what each route answers them.
READER_ONLY = {"delete_bucket": 403, "permissions": 403, "lifecycle": 403, "upload": 403,
               "get_upload": 404, "list_files": 200, "delete_file": 403, "create_link": 201,
               "revoke_link": 403}


@pytest.mark.parametrize("role", [Role.staff, Role.viewonly])
@pytest.mark.parametrize("route", OBJECT_ROUTES)
def test_an_unreadable_bucket_is_404_on_every_route(app: Flask, org: Org,
                                                    admin_links: dict[str, str], role: Role,
                                                    route: str) -> None:
    """No grant on the bucket: each of its objects answers exactly like a missing one, even
    where the caller's role or rights would be refused anyway."""
    who = org.fresh(role)
    hidden = _object_call(app, who, route, org.buckets["private"], org.files["private"],
                          org.uploads["private"], admin_links["private"])
    missing = _object_call(app, who, route, str(uuid.uuid4()), str(uuid.uuid4()),
                           str(uuid.uuid4()), str(uuid.uuid4()))
    assert missing.status_code == 404, missing.get_json()  # type: ignore[attr-defined]
    assert hidden.status_code == 404, hidden.get_json()  # type: ignore[attr-defined]
    assert problem_code(hidden) == problem_code(missing) == "not_found"


@pytest.mark.parametrize("role", [Role.staff, Role.viewonly])
@pytest.mark.parametrize("route", OBJECT_ROUTES)
def test_a_reader_without_the_right_gets_403(app: Flask, org: Org,
                                             admin_links: dict[str, str], role: Role,
                                             route: str) -> None:
    """Read on the bucket and nothing more: visible objects, so refusals are 403."""
    who = org.fresh(role)
    _grant(app, org.people[Role.admin], org.buckets["read"], who, True)
    response = _object_call(app, who, route, org.buckets["read"], org.files["read"],
                            org.uploads["read"], admin_links["read"])
    expected = READER_ONLY[route]
    assert response.status_code == expected, response.get_json()  # type: ignore[attr-defined]
    if expected == 403:
        assert problem_code(response) == "forbidden", route
    if expected == 404:  # someone else's upload: not theirs to read
        assert problem_code(response) == "not_found", route
    assert media.file_row(org.files["read"]) is not None


# -- access-key scopes -----------------------------------------------------------------------

STORAGE_SCOPES = ["buckets:read", "buckets:write", "files:read", "files:write", "files:delete"]


def test_access_key_scopes(app: Flask, org: Org) -> None:
    admin = org.fresh(Role.admin)
    full = make_access_key(admin, STORAGE_SCOPES).secret
    without = {scope: make_access_key(admin, [s for s in STORAGE_SCOPES if s != scope]).secret
               for scope in STORAGE_SCOPES}
    bucket, member = org.buckets["write"], org.people[Role.staff].member.membership_id

    def call(key: str, route: str, file_id: str, link_id: str, upload_id: str,
             scratch: str) -> object:
        client, headers = media.key_client(app, key)
        if route == "list_buckets":
            return client.get("/api/v1/buckets", headers=headers)
        if route == "create_bucket":
            return client.post("/api/v1/buckets", json={"name": f"k-{uuid.uuid4().hex[:8]}"},
                               headers=headers)
        if route == "delete_bucket":
            return client.delete(f"/api/v1/buckets/{scratch}", headers=headers)
        if route == "permissions":
            return client.put(f"/api/v1/buckets/{bucket}/permissions/{member}",
                              json={"read": True, "write": True, "delete": False},
                              headers=headers)
        if route == "lifecycle":
            return client.put(f"/api/v1/buckets/{bucket}/lifecycle",
                              json={"expire_after_days": None}, headers=headers)
        if route == "upload":
            return media.post_upload(client, headers, bucket, "k.png", "image/png", media.png())
        if route == "get_upload":
            return client.get(f"/api/v1/uploads/{upload_id}", headers=headers)
        if route == "list_files":
            return client.get(f"/api/v1/buckets/{bucket}/files", headers=headers)
        if route == "delete_file":
            return client.delete(f"/api/v1/files/{file_id}", headers=headers)
        if route == "create_link":
            return client.post(f"/api/v1/files/{file_id}/links", json={}, headers=headers)
        if route == "revoke_link":
            return client.delete(f"/api/v1/links/{link_id}", headers=headers)
        raise AssertionError(route)

    scope_of = {"list_buckets": ("buckets:read", 200), "create_bucket": ("buckets:write", 201),
                "delete_bucket": ("buckets:write", 204), "permissions": ("buckets:write", 200),
                "lifecycle": ("buckets:write", 200), "upload": ("files:write", 202),
                "get_upload": ("files:read", 200), "list_files": ("files:read", 200),
                "delete_file": ("files:delete", 204), "create_link": ("files:read", 201),
                "revoke_link": ("files:read", 204)}
    admin_client, admin_headers = media.session_client(app, admin)
    file_id = media.clean_files(admin_client, admin_headers, bucket, 1)[0]  # deleted below
    scratch = media.create_bucket(admin_client, admin_headers, "scratch")  # deleted below
    link_id = admin_client.post(f"/api/v1/files/{org.files['write']}/links", json={},
                                headers=admin_headers).get_json()["id"]  # revoked below
    upload_id = media.post_upload(admin_client, admin_headers, bucket, "u.png", "image/png",
                                  media.png()).get_json()["id"]
    upload_ids = [upload_id]
    for route, (scope, ok) in scope_of.items():
        target = file_id if route == "delete_file" else org.files["write"]
        denied = call(without[scope], route, target, link_id, upload_id, scratch)
        assert denied.status_code == 403, (route, denied.get_json())  # type: ignore[attr-defined]
        assert problem_code(denied) == "insufficient_scope", route
        allowed = call(full, route, target, link_id, upload_id, scratch)
        assert allowed.status_code == ok, (route, allowed.get_json())  # type: ignore[attr-defined]
        if route == "upload":
            upload_ids.append(allowed.get_json()["id"])  # type: ignore[attr-defined]
    media.wait_uploads(upload_ids)
    assert media.file_row(file_id) is None


def test_access_key_is_refused_on_session_only_routes(app: Flask, org: Org) -> None:
    key = make_access_key(org.fresh(Role.admin), STORAGE_SCOPES)
    client, headers = media.key_client(app, key.secret)
    refused = client.get("/api/v1/access-keys", headers=headers)
    assert refused.status_code == 403 and problem_code(refused) == "session_required"
    assert client.get("/api/v1/buckets", headers=headers).status_code == 200


# -- other tenants ---------------------------------------------------------------------------

def test_another_tenants_ids_are_404_everywhere(app: Flask, org: Org, other: Org,
                                                stack: LocalStack) -> None:
    """Tenant B's admin (every right in B) names tenant A's objects on every route."""
    victim_admin = org.fresh(Role.admin)
    victim_client, victim_headers = media.session_client(app, victim_admin)
    link = victim_client.post(f"/api/v1/files/{org.files['read']}/links", json={},
                              headers=victim_headers)
    assert link.status_code == 201
    link_id = link.get_json()["id"]
    bucket, file_id = org.buckets["read"], org.files["read"]
    own_member = other.people[Role.staff].member.membership_id
    victim_member = org.people[Role.staff].member.membership_id

    intruder = other.fresh(Role.admin)
    client, headers = media.session_client(app, intruder)
    attempts = {
        "list files": client.get(f"/api/v1/buckets/{bucket}/files"),
        "delete bucket": client.delete(f"/api/v1/buckets/{org.buckets['private']}",
                                       headers=headers),
        "grant own member": client.put(f"/api/v1/buckets/{bucket}/permissions/{own_member}",
                                       json={"read": True, "write": True, "delete": True},
                                       headers=headers),
        "grant victim member": client.put(
            f"/api/v1/buckets/{bucket}/permissions/{victim_member}",
            json={"read": True, "write": True, "delete": True}, headers=headers),
        "grant victim member on own bucket": client.put(
            f"/api/v1/buckets/{other.buckets['read']}/permissions/{victim_member}",
            json={"read": True, "write": False, "delete": False}, headers=headers),
        "lifecycle": client.put(f"/api/v1/buckets/{bucket}/lifecycle",
                                json={"expire_after_days": 1}, headers=headers),
        "upload": media.post_upload(client, headers, bucket, "x.png", "image/png", media.png()),
        "get upload": client.get(f"/api/v1/uploads/{org.upload_id}"),
        "delete file": client.delete(f"/api/v1/files/{file_id}", headers=headers),
        "create link": client.post(f"/api/v1/files/{file_id}/links", json={}, headers=headers),
        "revoke link": client.delete(f"/api/v1/links/{link_id}", headers=headers),
    }
    for name, response in attempts.items():
        assert response.status_code == 404, (name, response.status_code, response.get_json())
        assert problem_code(response) == "not_found", name
    listed = {b["id"] for b in client.get("/api/v1/buckets?limit=200").get_json()["items"]}
    assert listed.isdisjoint(org.buckets.values())
    # and nothing changed on A's side
    assert media.file_row(file_id) is not None
    still = victim_client.get(f"/api/v1/buckets/{bucket}/files").get_json()["items"]
    assert file_id in {f["id"] for f in still}
    assert app.test_client().get(
        link.get_json()["url"].replace("http://portcullis.test", ""),
        environ_base={"REMOTE_ADDR": "198.51.100.201"}).status_code == 200
