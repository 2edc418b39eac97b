"""The access matrix, generated from the route registry (``@operation``): every documented route,
by every kind of caller, on an object of the caller's own tenant and on one of another tenant.

Callers: a session of each role, an access key with every scope and one without the route's
scope, nobody, an operator key, an admin's session that leaves out its CSRF token, and an
admin of a suspended tenant. Each answer must be the documented one: 401 without a
credential, 403 ``forbidden`` for a role (or for a route of the operators), ``session_required``,
``insufficient_scope``, ``csrf_failed``, ``tenant_suspended``; 404 for every object of another
tenant, never a 403 that would confirm it exists; and on the caller's own object the route's
success status. Who may act comes from API.md's "who" column, which the registry's roles must
agree with, so neither can drift alone.

Each case gets fresh objects from ``FACTORIES`` (one per path parameter) and a fresh session
or key, since a case may delete what it was given. A route whose path parameter has no
factory, or that API.md does not place in a "who" column, fails here: the matrix always
covers the whole registry.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from flask import Flask
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from app.api.operation import OPERATOR, PUBLIC, SESSION_ONLY, Operation
from devstack.shared import shared_dir
from portcullis.access_keys.service import SCOPES
from portcullis.accounts.models import Role
from portcullis.tenants.models import TenantStatus
from tests.support.factories import (
    Member,
    StoredFile,
    grant,
    make_access_key,
    make_bucket,
    make_file,
    make_file_link,
    make_invoice,
    make_job,
    make_member,
    make_operator_key,
    make_passkey,
    make_session,
    make_sftp_account,
    make_tenant,
    make_upload,
)
from tests.support.media import png
from tests.support.web import app_with, make_client, problem_code

ROLES = frozenset(Role)
GRANTED = frozenset({Role.admin, Role.manager, Role.staff})  # view-only holds read at most
# API.md's "who" phrases: the roles that may act on an object they can see and were granted.
WHO = {
    "any": ROLES,
    "any (only buckets they may read)": ROLES,
    "read permission": ROLES,
    "uploader, admin": ROLES,  # the case's upload is the caller's own
    "creator, admin": ROLES,  # so are its links and jobs
    "write permission": GRANTED,
    "delete permission": GRANTED,
    "admin": frozenset({Role.admin}),
    "admin, manager": frozenset({Role.admin, Role.manager}),
    "admin; manager for staff/viewonly": frozenset({Role.admin, Role.manager}),
}
PUBLIC_WHO, OPERATOR_WHO = "public", "operator key"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# Valid bodies for the routes that act on an object, so the answer is the object's (a 404, or
# the success status), not the body's 422. Other routes get ``{}``: the guard answers first.
BODIES: dict[str, dict[str, Any]] = {
    "MemberPatch": {"role": "viewonly"},
    "PermissionIn": {"read": True, "write": False, "delete": False},
    "LifecycleIn": {"expire_after_days": 30},
    "LinkIn": {"expires_in": 600},
    # Operators' bodies stay empty (a 422 past the guard): a valid one would act on tenants
    # the other tests own.
    "PaymentIn": {}, "VoidIn": {}, "TenantStatusIn": {},
}
GUARD_ANSWERS = {(401, "not_authenticated"), (403, "forbidden"), (403, "session_required"),
                 (403, "insufficient_scope"), (403, "csrf_failed"), (403, "tenant_suspended"),
                 (403, "mfa_required"), (403, "mfa_enrollment_required")}


# --------------------------------------------------------------------------- API.md's who

ENTRY = re.compile(r"(GET|POST|PUT|PATCH|DELETE) (\S+)")
PROSE = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/api/v1/[^`\s]+)` \(([^)]+)\)")


def shape(path: str) -> str:
    """A path with its parameters blanked, so ``/buckets/{id}`` matches ``<uuid:bucket_id>``."""
    return re.sub(r"\{[^}]*\}|<[^>]*>", "{}", path.split("?")[0])


@cache
def documented_who() -> dict[tuple[str, str], str]:
    """(method, shape) → API.md's "who" for every route its tables (and the jobs sentence)
    give one."""
    who: dict[tuple[str, str], str] = {}
    in_table = False
    for line in (shared_dir() / "API.md").read_text().splitlines():
        if not line.startswith("|"):
            in_table = False
            for match in PROSE.finditer(line):
                who[(match[1], shape(match[2]))] = match[3]
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[:2] == ["method path", "who"]:
            in_table = True
        elif in_table and not cells[0].startswith("---"):
            path = ""
            for part in cells[0].split(","):
                entry = ENTRY.match(part.strip())
                assert entry, f"API.md: cannot read {cells[0]!r}"
                path = path if entry[2] == "same" else entry[2]
                who[(entry[1], shape(path))] = cells[1]
    return who


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class Route:
    method: str
    rule: Rule
    op: Operation

    @property
    def label(self) -> str:
        return f"{self.method} {self.rule.rule}"

    @property
    def params(self) -> list[str]:
        return sorted(self.rule.arguments)

    @property
    def who(self) -> str | None:
        return documented_who().get((self.method, shape(self.rule.rule)))

    @property
    def multipart(self) -> bool:
        content = self.op.extra.get("requestBody", {}).get("content", {})
        return "multipart/form-data" in content


def routes(app: Flask) -> list[Route]:
    found = []
    for rule in app.url_map.iter_rules():
        op = getattr(app.view_functions[rule.endpoint], "__openapi__", None)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if op is not None:
                found.append(Route(method, rule, op))
    return sorted(found, key=lambda route: route.label)


# --------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class World:
    members: dict[Role, Member]  # one of each role in the home tenant
    other_admin: Member  # who makes the other tenant's objects
    suspended_admin: Member
    operator_key: str


@pytest.fixture(scope="module")
def matrix_app(stack: object) -> Iterator[Flask]:
    """The app with a default rate limit this many requests never reaches."""
    with app_with(RATE_LIMIT_DEFAULT="100000/minute") as app:
        yield app


@pytest.fixture(scope="module")
def world(stack: object) -> World:
    home = make_tenant("Matrix Home Co")
    return World({role: make_member(home, role) for role in Role},
                 make_member(make_tenant("Matrix Other Co")),
                 make_member(make_tenant("Matrix Suspended Co",
                                         status=TenantStatus.suspended)),
                 make_operator_key("matrix operator").secret)


@dataclass(frozen=True)
class Caller:
    name: str
    kind: str  # "session", "key", "narrow key" (lacks the route's scope), "nobody", "operator"
    role: Role = Role.admin  # a key acts with its creator's, an admin's
    csrf: bool = True
    suspended: bool = False

    def member(self, world: World) -> Member | None:
        if self.kind in ("nobody", "operator"):
            return None
        return world.suspended_admin if self.suspended else world.members[self.role]


CALLERS = [
    *(Caller(role.value, "session", role) for role in Role),
    Caller("access key (every scope)", "key"),
    Caller("access key (not the route's scope)", "narrow key"),
    Caller("nobody", "nobody"),
    Caller("operator key", "operator"),
    Caller("admin session without its CSRF token", "session", csrf=False),
    Caller("admin of a suspended tenant", "session", suspended=True),
]


# --------------------------------------------------------------------------- objects


class Place:
    """Where a case's objects live: ``owner`` makes them (the caller itself, or the other
    tenant's admin), and ``grantee`` (a staff or view-only caller) is given what it may
    hold on each bucket."""

    def __init__(self, owner: Member, grantee: Member | None) -> None:
        self.owner, self.grantee = owner, grantee
        self._bucket: uuid.UUID | None = None

    def bucket(self) -> uuid.UUID:
        if self._bucket is None:
            self._bucket = make_bucket(self.owner)
            if self.grantee is not None:
                full = self.grantee.role is not Role.viewonly
                grant(self._bucket, self.grantee, read=True, write=full, delete=full)
        return self._bucket

    def file(self) -> StoredFile:
        return make_file(self.owner, self.bucket())


FACTORIES: dict[str, Callable[[Place], object]] = {
    "bucket_id": Place.bucket,
    "file_id": lambda place: place.file().id,
    "link_id": lambda place: make_file_link(place.file(), created_by=place.owner.user_id).id,
    "upload_id": lambda place: make_upload(place.owner, place.bucket()),
    "job_id": lambda place: make_job(place.owner),
    "session_id": lambda place: make_session(place.owner).session_id,
    "key_id": lambda place: make_access_key(place.owner).id,
    "member_id": lambda place: make_member(place.owner.tenant_id, Role.staff).membership_id,
    "account_id": lambda place: make_sftp_account(place.owner.tenant_id, place.bucket()),
    "invoice_id": lambda place: make_invoice(place.owner.tenant_id),
    "tenant_id": lambda place: place.owner.tenant_id,
    "credential_id": lambda place: make_passkey(place.owner).id,
}


# --------------------------------------------------------------------------- expectations

REACHED = "past the guard"  # any answer but a guard's (a route without an object to act on)


def expected(route: Route, caller: Caller, own: bool) -> tuple[int, str | None] | str:
    """What API.md promises this caller on this route, in the guard's order, then the
    object's (visibility before role, so another tenant's object is always a 404)."""
    op = route.op
    if caller.kind == "nobody":
        return 401, "not_authenticated"
    if caller.kind == "operator":
        if op.auth == OPERATOR:
            return REACHED
        if op.operator_may_read:
            return 404, None  # only the jobs it started, and this one it did not
        return 401, "not_authenticated"
    if op.auth == OPERATOR:
        return 403, "forbidden"
    if caller.kind in ("key", "narrow key"):
        if op.auth == SESSION_ONLY:
            return 403, "session_required"
        if caller.kind == "narrow key":
            return 403, "insufficient_scope"
    elif route.method in UNSAFE and not caller.csrf:
        return 403, "csrf_failed"
    if op.roles is not None and caller.role not in op.roles:
        return 403, "forbidden"
    if op.writes and caller.suspended:
        return 403, "tenant_suspended"
    if not route.params:
        return REACHED
    if not own:
        return 404, None
    who = WHO[route.who] if route.who else ROLES
    if caller.role not in who:
        return 403, "forbidden"
    return op.status, None


# --------------------------------------------------------------------------- one case


def _call(app: Flask, world: World, route: Route, caller: Caller, own: bool) -> TestResponse:
    member = caller.member(world)
    if own:
        owner = member or world.members[Role.admin]
        place = Place(owner, owner if owner.role in (Role.staff, Role.viewonly) else None)
    else:
        place = Place(world.other_admin, None)
    values = {name: FACTORIES[name](place) for name in route.params}
    path = route.rule.build(values, append_unknown=False)[1]
    client = make_client(app)
    headers: dict[str, str] = {}
    if caller.kind == "session":
        assert member is not None
        session = make_session(member)
        session.attach(client)
        if caller.csrf:
            headers["X-CSRF-Token"] = session.csrf
    elif caller.kind in ("key", "narrow key"):
        assert member is not None
        scopes = (list(SCOPES) if caller.kind == "key"
                  else [next(s for s in SCOPES if s != route.op.scope)])
        headers["Authorization"] = f"Bearer {make_access_key(member, scopes).secret}"
    elif caller.kind == "operator":
        headers["Authorization"] = f"Bearer {world.operator_key}"
    if route.multipart:
        return client.open(path, method=route.method, headers=headers,
                           data={"file": (io.BytesIO(png()), "photo.png", "image/png")},
                           content_type="multipart/form-data")
    if route.method not in UNSAFE:
        return client.open(path, method=route.method, headers=headers)
    body: dict[str, Any] = {}
    if route.params and route.op.request is not None:
        body = BODIES[route.op.request.__name__]
    return client.open(path, method=route.method, headers=headers, json=body)


def _verdict(response: TestResponse, want: tuple[int, str | None] | str) -> str | None:
    """None when the answer is the promised one, else what it was."""
    got = (response.status_code, problem_code(response))
    if response.status_code >= 500:
        return f"{got}"
    if want == REACHED:
        return f"{got}, a guard's answer" if got in GUARD_ANSWERS else None
    status, code = want  # type: ignore[misc]
    if response.status_code != status or (code is not None and got[1] != code):
        return f"{got}"
    return None


# --------------------------------------------------------------------------- the tests


def _guarded(app: Flask) -> list[Route]:
    return [route for route in routes(app) if route.op.auth != PUBLIC]


def test_the_registry_and_api_md_agree_on_who(matrix_app: Flask) -> None:
    """Every route outside /auth/* has API.md's who; the registry's auth kind and roles say
    the same; every path parameter has a factory and every object route a valid body."""
    problems = []
    for route in routes(matrix_app):
        who, op = route.who, route.op
        problems += [f"{route.label}: no factory for <{name}>; add one to FACTORIES"
                     for name in route.params if name not in FACTORIES and op.auth != PUBLIC]
        if (op.auth != PUBLIC and route.params and op.request is not None
                and op.request.__name__ not in BODIES):
            problems.append(f"{route.label}: add a valid {op.request.__name__} to BODIES")
        if who is None:
            if op.auth != PUBLIC and not route.rule.rule.startswith("/api/v1/auth/"):
                problems.append(f"{route.label}: API.md gives no who")
            continue
        if ((who == PUBLIC_WHO) != (op.auth == PUBLIC)
                or (who == OPERATOR_WHO) != (op.auth == OPERATOR)):
            problems.append(f"{route.label}: API.md says {who!r}, the registry {op.auth}")
        elif who not in (PUBLIC_WHO, OPERATOR_WHO):
            if who not in WHO:
                problems.append(f"{route.label}: unknown who {who!r}; add it to WHO")
            elif op.roles is not None and frozenset(op.roles) != WHO[who]:
                problems.append(f"{route.label}: API.md allows {who!r}, the registry "
                                f"{sorted(r.value for r in op.roles)}")
    assert not problems, "\n".join(problems)
    assert len(_guarded(matrix_app)) > 40


def test_every_route_every_caller_own_and_other_tenant(matrix_app: Flask,
                                                       world: World) -> None:
    failures, cases = [], 0
    for route in _guarded(matrix_app):
        for caller in CALLERS:
            for own in (True, False) if route.params else (True,):
                want = expected(route, caller, own)
                response = _call(matrix_app, world, route, caller, own)
                cases += 1
                wrong = _verdict(response, want)
                if wrong:
                    failures.append(f"{route.label} as {caller.name}, "
                                    f"{'own' if own else 'other'} tenant: want {want}, "
                                    f"got {wrong}")
    assert not failures, f"{len(failures)} of {cases} cases:\n" + "\n".join(failures)
    assert cases > 600, cases
