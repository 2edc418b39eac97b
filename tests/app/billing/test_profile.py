"""GET/PUT /api/v1/billing/profile: a tenant admin's, in a browser session only; CPF and CNPJ
(numeric and alphanumeric) check digits verified and answered compact; the tax id never
leaves in full through an error or the audit trail; read-only while the tenant is suspended."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from werkzeug.test import TestResponse

from devstack.stack import LocalStack
from portcullis.accounts.models import Role
from portcullis.audit.models import AuditEvent
from portcullis.db import system_session
from portcullis.tenants.models import TenantStatus
from tests.app.billing.helpers import api_events, events
from tests.support.factories import (
    LoggedIn,
    make_access_key,
    make_member,
    make_profile,
    make_session,
    make_tenant,
)
from tests.support.web import make_client, problem_code

URL = "/api/v1/billing/profile"
ALL_SCOPES = ["buckets:read", "buckets:write", "files:read", "files:write", "files:delete",
              "sftp:write", "billing:read", "audit:read", "jobs:read"]
PROFILE: dict[str, Any] = {
    "legal_name": "Acme Comércio Ltda",
    "email": "billing@acme.example.com",
    "tax_id_type": "cnpj",
    "tax_id": "12.abc.345/01de-35",
    "address": {"line1": "Av. Paulista, 1000", "line2": "Conj. 42", "city": "São Paulo",
                "state": "SP", "postal_code": "01310-100", "country": "BR"},
}

pytestmark = pytest.mark.usefixtures("stack")


def _body(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(PROFILE)
    address = changes.pop("address", None)
    body.update(changes)
    if address is not None:
        body["address"] = {**body["address"], **address}
    return body


def _admin(tenant_id: uuid.UUID | None = None) -> LoggedIn:
    return make_session(make_member(tenant_id or make_tenant("Profile Co"), Role.admin))


def _put(app: Flask, who: LoggedIn, body: Any) -> TestResponse:
    return make_client(app, who).put(URL, json=body, headers={"X-CSRF-Token": who.csrf})


def _get(app: Flask, who: LoggedIn) -> TestResponse:
    return make_client(app, who).get(URL)


# --- reading and writing --------------------------------------------------------------------


def test_get_before_any_put_is_404(app: Flask) -> None:
    response = _get(app, _admin())
    assert response.status_code == 404 and problem_code(response) == "not_found"
    assert response.mimetype == "application/problem+json"


def test_put_then_get_answers_the_profile_compact(app: Flask) -> None:
    admin = _admin()
    response = _put(app, admin, PROFILE)
    assert response.status_code == 200, response.get_json()
    expected = {**PROFILE, "tax_id": "12ABC34501DE35"}
    assert response.get_json() == expected
    again = _get(app, admin)
    assert again.status_code == 200 and again.get_json() == expected

    # A second PUT replaces the whole profile.
    replaced = _body(legal_name="Acme SA", tax_id_type="cpf", tax_id="390.533.447-05",
                     address={"line2": "", "country": "PT"})
    response = _put(app, admin, replaced)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {**replaced, "tax_id": "39053344705"}
    assert _get(app, admin).get_json() == {**replaced, "tax_id": "39053344705"}


@pytest.mark.parametrize(("kind", "submitted", "compact"), [
    ("cnpj", "12.abc.345/01de-35", "12ABC34501DE35"),  # alphanumeric, punctuated, lower case
    ("cnpj", "12ABC34501DE35", "12ABC34501DE35"),
    ("cnpj", "12abc34501de35", "12ABC34501DE35"),
    ("cnpj", "11.222.333/0001-81", "11222333000181"),  # numeric
    ("cnpj", "11222333000181", "11222333000181"),
    ("cpf", "390.533.447-05", "39053344705"),
    ("cpf", "39053344705", "39053344705"),
])
def test_valid_tax_ids_are_answered_compact(app: Flask, kind: str, submitted: str,
                                            compact: str) -> None:
    response = _put(app, _admin(), _body(tax_id_type=kind, tax_id=submitted))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["tax_id"] == compact
    assert response.get_json()["tax_id_type"] == kind


def test_no_tax_id(app: Flask) -> None:
    admin = _admin()
    for body in (_body(tax_id_type="none", tax_id=None), _body(tax_id_type="none", tax_id=""),
                 {k: v for k, v in _body(tax_id_type="none").items() if k != "tax_id"}):
        response = _put(app, admin, body)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["tax_id_type"] == "none"
        assert response.get_json()["tax_id"] is None


@pytest.mark.parametrize(("kind", "submitted"), [
    ("cnpj", "12.abc.345/01de-36"),  # wrong check digit, alphanumeric
    ("cnpj", "12ABC34501DE53"),
    ("cnpj", "11.222.333/0001-82"),  # wrong check digit, numeric
    ("cnpj", "1122233300018"),  # too short
    ("cnpj", "390.533.447-05"),  # a CPF is not a CNPJ
    ("cpf", "390.533.447-06"),
    ("cpf", "39053344750"),
    ("cpf", "11.222.333/0001-81"),  # a CNPJ is not a CPF
    ("cpf", "39O53344705"),  # a letter O in a CPF
    # A valid CPF in Arabic-Indic digits: only ASCII digits and letters make a tax id.
    ("cpf", "".join(chr(0x0660 + int(d)) for d in "39053344705")),
])
def test_a_wrong_tax_id_is_400_and_never_repeated(app: Flask, kind: str,
                                                  submitted: str) -> None:
    admin = _admin()
    response = _put(app, admin, _body(tax_id_type=kind, tax_id=submitted))
    assert response.status_code == 400, response.get_json()
    assert problem_code(response) == "invalid_tax_id"
    raw = response.get_data(as_text=True)
    compact = "".join(c for c in submitted if c.isalnum())
    for form in (submitted, compact, compact.upper(), compact[:8]):
        assert form not in raw
    assert _get(app, admin).status_code == 404  # nothing was stored


def test_a_tax_id_with_type_none_is_400(app: Flask) -> None:
    response = _put(app, _admin(), _body(tax_id_type="none", tax_id="390.533.447-05"))
    assert response.status_code == 400 and problem_code(response) == "invalid_tax_id"
    assert "39053344705" not in response.get_data(as_text=True)


@pytest.mark.parametrize("kind", ["cpf", "cnpj"])
def test_a_cpf_or_cnpj_needs_its_number(app: Flask, kind: str) -> None:
    response = _put(app, _admin(), _body(tax_id_type=kind, tax_id=None))
    assert response.status_code == 400 and problem_code(response) == "invalid_tax_id"


def test_an_overlong_tax_id_is_400_without_echo(app: Flask) -> None:
    submitted = "12.345.678/0001-95" * 3
    response = _put(app, _admin(), _body(tax_id=submitted))
    assert response.status_code == 400
    assert "12.345.678/0001-95" not in response.get_data(as_text=True)


@pytest.mark.parametrize("country", ["BR", "PT", "US"])
def test_iso_country_codes_are_accepted(app: Flask, country: str) -> None:
    response = _put(app, _admin(), _body(address={"country": country}))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["address"]["country"] == country


@pytest.mark.parametrize("body", [
    _body(address={"country": "XX"}),  # not assigned
    _body(address={"country": "BRA"}),  # alpha-3
    _body(address={"country": "B"}),
    _body(address={"country": "76"}),  # numeric
    _body(address={"country": ""}),
    _body(address={"country": "ÇA"}),
    _body(email="not an email"),
    _body(email="billing@"),
    _body(tax_id_type="vat"),
    _body(legal_name=""),
    _body(legal_name="x" * 201),
    _body(address={"city": ""}),
    _body(extra="field"),  # unknown top-level field
    _body(address={"country": "BR", "region": "Sudeste"}),  # unknown address field
    {k: v for k, v in PROFILE.items() if k != "legal_name"},
    {k: v for k, v in PROFILE.items() if k != "address"},
    [PROFILE],
])
def test_invalid_bodies_are_400_and_store_nothing(app: Flask, body: Any) -> None:
    admin = _admin()
    response = _put(app, admin, body)
    assert response.status_code == 400, response.get_json()
    assert problem_code(response) == "validation_error"
    assert response.mimetype == "application/problem+json"
    assert _get(app, admin).status_code == 404


# --- the audit trail ----------------------------------------------------------------------------


def test_updates_are_audited_with_the_tax_id_masked(app: Flask) -> None:
    admin = _admin()
    tenant = admin.member.tenant_id
    assert _put(app, admin, PROFILE).status_code == 200
    assert _put(app, admin, _body(legal_name="Acme SA")).status_code == 200

    rows = events(tenant, "billing.profile_updated")
    assert len(rows) == 2
    first, second = rows
    assert first.actor_type == "user" and first.actor_id == str(admin.member.user_id)
    assert first.details["created"] is True and second.details["created"] is False
    assert second.details["changed"] == ["legal_name"]
    for row in rows:
        assert row.details["tax_number_masked"] == "**********DE35"
        assert row.target_type == "billing_profile" and row.target_id == str(tenant)

    # The full id (any form of it) is nowhere in the rows nor in what the API answers.
    with system_session() as db:
        stored = " ".join(db.scalars(text(
            "SELECT row_to_json(e)::text FROM audit_events e "
            "WHERE tenant_id = :t AND action = 'billing.profile_updated'"), {"t": tenant}))
    listed = str(api_events(app, tenant, "billing.profile_updated"))
    assert "DE35" in listed
    for form in ("12ABC34501DE35", "12.abc.345/01de-35", "12abc34501de35", "12ABC345"):
        assert form.upper() not in stored.upper()
        assert form.upper() not in listed.upper()


def test_a_refused_put_is_not_audited(app: Flask) -> None:
    admin = _admin()
    assert _put(app, admin, _body(tax_id="11.222.333/0001-82")).status_code == 400
    assert _put(app, admin, _body(address={"country": "XX"})).status_code == 400
    assert events(admin.member.tenant_id, "billing.profile_updated") == []


# --- who may read and write ------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.manager, Role.staff, Role.viewonly])
def test_other_roles_are_refused(app: Flask, role: Role) -> None:
    tenant = make_tenant("Roles Co")
    make_profile(tenant, legal_name="Roles Ltda")
    member = make_session(make_member(tenant, role))
    read = _get(app, member)
    assert read.status_code == 403 and problem_code(read) == "forbidden"
    assert "Roles Ltda" not in read.get_data(as_text=True)
    write = _put(app, member, PROFILE)
    assert write.status_code == 403 and problem_code(write) == "forbidden"
    assert _get(app, _admin(tenant)).get_json()["legal_name"] == "Roles Ltda"


def test_an_access_key_needs_a_browser_session(app: Flask) -> None:
    """Even an admin's key with every scope: the profile is a session-only route."""
    tenant = make_tenant("Keys Co")
    make_profile(tenant, legal_name="Keys Ltda")
    admin = _admin(tenant)
    key = make_access_key(admin, ALL_SCOPES)
    client = make_client(app)
    read = client.get(URL, headers=key.bearer)
    assert read.status_code == 403 and problem_code(read) == "session_required"
    write = client.put(URL, headers=key.bearer, json=PROFILE)
    assert write.status_code == 403 and problem_code(write) == "session_required"
    assert _get(app, admin).get_json()["legal_name"] == "Keys Ltda"


def test_anonymous_is_401(app: Flask) -> None:
    client = make_client(app)
    assert client.get(URL).status_code == 401
    assert client.put(URL, json=PROFILE).status_code == 401


def test_put_needs_the_csrf_header(app: Flask) -> None:
    admin = _admin()
    client: FlaskClient = make_client(app, admin)
    for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
        response = client.put(URL, json=PROFILE, headers=headers)
        assert response.status_code == 403 and problem_code(response) == "csrf_failed"
    assert _get(app, admin).status_code == 404


def test_a_suspended_tenant_reads_but_cannot_write(app: Flask) -> None:
    tenant = make_tenant("Suspended Profile Co", status=TenantStatus.suspended)
    make_profile(tenant, legal_name="Suspended Ltda")
    admin = _admin(tenant)
    write = _put(app, admin, PROFILE)
    assert write.status_code == 403 and problem_code(write) == "tenant_suspended"
    read = _get(app, admin)
    assert read.status_code == 200 and read.get_json()["legal_name"] == "Suspended Ltda"
    assert events(tenant, "billing.profile_updated") == []


def test_another_tenant_never_sees_nor_changes_it(app: Flask, stack: LocalStack) -> None:
    owner = _admin()
    assert _put(app, owner, PROFILE).status_code == 200
    stranger = _admin(make_tenant("Stranger Co"))
    response = _get(app, stranger)
    assert response.status_code == 404
    assert "Acme" not in response.get_data(as_text=True)

    # The stranger's own PUT makes the stranger's profile, not a change to the owner's.
    assert _put(app, stranger, _body(legal_name="Stranger Ltda")).status_code == 200
    assert _get(app, owner).get_json()["legal_name"] == PROFILE["legal_name"]
    assert _get(app, stranger).get_json()["legal_name"] == "Stranger Ltda"
    with system_session() as db:
        owners = set(db.scalars(select(AuditEvent.tenant_id).where(
            AuditEvent.action == "billing.profile_updated",
            AuditEvent.actor_id == str(stranger.member.user_id))))
    assert owners == {stranger.member.tenant_id}
