"""GET /api/v1/invoices, /invoices/{id} and /invoices/{id}/pdf: a tenant's admins and
managers (and keys with ``billing:read``) read the invoices real runs issued, newest first,
in API.md's shape; the PDF shows the billing profile as it stood at issue and renders the
same bytes each time; another tenant's invoice is a 404 everywhere.

The invoices are this module's: tenants created in 2014, periods 2014-01..03 issued in 2014.
Later runs (other modules, the operator route) may add zero invoices of theirs to these
tenants, so lists are compared with the database, never with a fixed length."""

from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest
from flask import Flask
from pypdf import PdfReader
from werkzeug.test import TestResponse

from devstack.stack import LocalStack
from portcullis.accounts.models import Role
from tests.app.billing.helpers import (
    EXTRA_INVOICE_FIELDS,
    GIB,
    INVOICE_FIELDS,
    LINE_FIELDS,
    admin_client,
    all_pages,
    invoice_ids,
    invoice_row,
    issue,
    utc,
)
from tests.support.factories import (
    make_access_key,
    make_bucket,
    make_member,
    make_profile,
    make_session,
    make_tenant,
    record_usage,
)
from tests.support.web import make_client, problem_code

URL = "/api/v1/invoices"
OLD_NAME = "Comércio Antigo Ltda"
NEW_NAME = "Nova Razão Social SA"


@dataclass
class Billed:
    tenant_id: uuid.UUID
    january: uuid.UUID  # no usage: zero total, issued paid
    february: uuid.UUID  # storage and egress
    march: uuid.UUID  # 40 GiB every day
    other_tenant_id: uuid.UUID
    other_invoice: uuid.UUID


@pytest.fixture(scope="module")
def billed(stack: LocalStack) -> Billed:
    tenant = make_tenant("Invoice Co", created_at=utc(2014, 1, 1))
    make_profile(tenant, legal_name=OLD_NAME, tax_id_type="cnpj", tax_id="11222333000181")
    bucket = make_bucket(tenant)
    # February: 1.5 GiB on 10 of 28 days (15/28 GiB-months) and 0.25 GiB served on each.
    record_usage(tenant, bucket, date(2014, 2, 10), 10, bytes_per_day=3 * 2**29, objects=3,
                 egress_per_day=2**28)
    record_usage(tenant, bucket, date(2014, 3, 1), 31, bytes_per_day=40 * GIB, objects=5)

    other = make_tenant("Invoice Other Co", created_at=utc(2014, 1, 1))
    make_profile(other, legal_name="Outra Empresa Ltda")
    record_usage(other, make_bucket(other), date(2014, 2, 1), 28, bytes_per_day=GIB)

    january = issue(tenant, "2014-01", utc(2014, 2, 1, 3))
    february = issue(tenant, "2014-02", utc(2014, 3, 1, 3))
    march = issue(tenant, "2014-03", utc(2014, 4, 1, 3))
    other_invoice = invoice_row(other, "2014-02").id
    return Billed(tenant, january, february, march, other, other_invoice)


def _get(app: Flask, tenant_id: uuid.UUID, path: str, role: Role = Role.admin) -> TestResponse:
    return admin_client(app, tenant_id, role).get(path)


def _parse(moment: str) -> datetime:
    parsed = datetime.fromisoformat(moment)
    assert parsed.utcoffset() == timedelta(0), moment
    return parsed


def _pdf_text(document: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(document)).pages)


# --- one invoice ----------------------------------------------------------------------------


def test_an_invoice_has_the_documented_shape(app: Flask, billed: Billed) -> None:
    response = _get(app, billed.tenant_id, f"{URL}/{billed.february}")
    assert response.status_code == 200, response.get_json()
    invoice = response.get_json()
    assert INVOICE_FIELDS <= set(invoice) <= INVOICE_FIELDS | EXTRA_INVOICE_FIELDS
    assert invoice["id"] == str(billed.february)
    assert re.fullmatch(r"INV-2014-\d{6}", invoice["number"])
    assert invoice["period"] == "2014-02"
    assert invoice["status"] == "open" and invoice["paid_at"] is None
    assert invoice["currency"] == "BRL"
    issued = _parse(invoice["issued_at"])
    assert issued == utc(2014, 3, 1, 3)
    assert _parse(invoice["due_at"]) == issued + timedelta(days=15)

    lines = invoice["lines"]
    assert all(set(line) == LINE_FIELDS for line in lines)
    for line in lines:  # JSON numbers, never strings
        assert isinstance(line["quantity"], int | float) and not isinstance(
            line["quantity"], bool)
        assert isinstance(line["unit_cents"], int) and isinstance(line["amount_cents"], int)
    assert [(line["quantity"], line["unit_cents"], line["amount_cents"]) for line in lines] == [
        (0.535714286, 25, 13),  # 15/28 GiB-months, half up to 9 places
        (2.5, 10, 25),  # GiB served
    ]
    assert invoice["total_cents"] == 38 == sum(line["amount_cents"] for line in lines)
    # The quantity is written as a number in the JSON text itself.
    assert re.search(r'"quantity":\s*0\.535714286\b', response.get_data(as_text=True))


def test_a_zero_invoice_is_issued_paid(app: Flask, billed: Billed) -> None:
    invoice = _get(app, billed.tenant_id, f"{URL}/{billed.january}").get_json()
    assert invoice["period"] == "2014-01"
    assert invoice["lines"] == [] and invoice["total_cents"] == 0
    assert invoice["status"] == "paid"
    assert _parse(invoice["paid_at"]) == _parse(invoice["issued_at"]) == utc(2014, 2, 1, 3)


def test_unknown_or_malformed_ids_are_404(app: Flask, billed: Billed) -> None:
    client = admin_client(app, billed.tenant_id)
    for path in (f"{URL}/{uuid.uuid4()}", f"{URL}/{uuid.uuid4()}/pdf", f"{URL}/not-a-uuid",
                 f"{URL}/not-a-uuid/pdf"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.mimetype == "application/problem+json"


# --- the list ----------------------------------------------------------------------------------


def test_the_list_is_newest_first(app: Flask, billed: Billed) -> None:
    response = _get(app, billed.tenant_id, URL)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"items", "next_cursor"}
    items = body["items"]
    assert [i["id"] for i in items] == invoice_ids(billed.tenant_id)[:50]
    issued = [_parse(i["issued_at"]) for i in items]
    assert issued == sorted(issued, reverse=True)
    ours = [i["id"] for i in items if i["period"].startswith("2014-")]
    assert ours == [str(billed.march), str(billed.february), str(billed.january)]
    assert all(INVOICE_FIELDS <= set(i) <= INVOICE_FIELDS | EXTRA_INVOICE_FIELDS
               for i in items)
    march = next(i for i in items if i["id"] == str(billed.march))
    assert march == _get(app, billed.tenant_id, f"{URL}/{billed.march}").get_json()
    assert march["total_cents"] == 1000 and march["lines"][0]["quantity"] == 40


@pytest.mark.parametrize("limit", [1, 2])
def test_pages_cover_every_invoice_once(app: Flask, billed: Billed, limit: int) -> None:
    items = all_pages(admin_client(app, billed.tenant_id), URL, limit)
    assert [i["id"] for i in items] == invoice_ids(billed.tenant_id)
    assert len(items) >= 3


@pytest.mark.parametrize("limit", ["0", "201", "x"])
def test_a_bad_limit_is_400(app: Flask, billed: Billed, limit: str) -> None:
    response = admin_client(app, billed.tenant_id).get(URL, query_string={"limit": limit})
    assert response.status_code == 400 and problem_code(response) == "validation_error"


# --- the PDF ------------------------------------------------------------------------------------


def test_the_pdf_shows_the_profile_as_issued(app: Flask, billed: Billed) -> None:
    admin = make_session(make_member(billed.tenant_id, Role.admin))
    number = _get(app, billed.tenant_id, f"{URL}/{billed.march}").get_json()["number"]
    changed = make_client(app, admin).put(
        "/api/v1/billing/profile", headers={"X-CSRF-Token": admin.csrf},
        json={"legal_name": NEW_NAME, "email": "new@example.com", "tax_id_type": "none",
              "address": {"line1": "Rua Nova, 1", "city": "Recife", "country": "BR"}})
    assert changed.status_code == 200, changed.get_json()

    response = make_client(app, admin).get(f"{URL}/{billed.march}/pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF-")
    text = _pdf_text(response.data)
    assert number in text and "2014-03" in text
    assert OLD_NAME in text and "11222333000181" in text and "Paulista" in text
    assert NEW_NAME not in text and "Recife" not in text
    assert "BRL 10.00" in text  # the total


def test_the_same_invoice_renders_the_same_bytes(app: Flask, billed: Billed) -> None:
    client = admin_client(app, billed.tenant_id)
    first = client.get(f"{URL}/{billed.february}/pdf")
    second = client.get(f"{URL}/{billed.february}/pdf")
    assert first.status_code == second.status_code == 200
    assert first.data == second.data
    other = client.get(f"{URL}/{billed.march}/pdf")
    assert other.data != first.data


# --- who may read --------------------------------------------------------------------------------


def _paths(billed: Billed) -> list[str]:
    return [URL, f"{URL}/{billed.february}", f"{URL}/{billed.february}/pdf"]


@pytest.mark.parametrize("role", [Role.admin, Role.manager])
def test_admins_and_managers_read(app: Flask, billed: Billed, role: Role) -> None:
    client = admin_client(app, billed.tenant_id, role)
    for path in _paths(billed):
        assert client.get(path).status_code == 200, path


@pytest.mark.parametrize("role", [Role.staff, Role.viewonly])
def test_other_roles_are_refused(app: Flask, billed: Billed, role: Role) -> None:
    client = admin_client(app, billed.tenant_id, role)
    for path in _paths(billed):
        response = client.get(path)
        assert response.status_code == 403 and problem_code(response) == "forbidden", path
        assert b"INV-" not in response.data


def test_an_access_key_needs_the_billing_read_scope(app: Flask, billed: Billed) -> None:
    admin = make_session(make_member(billed.tenant_id, Role.admin))
    allowed = make_access_key(admin, ["billing:read"])
    lacking = make_access_key(admin, ["jobs:read", "audit:read", "files:read"])
    client = make_client(app)
    for path in _paths(billed):
        assert client.get(path, headers=allowed.bearer).status_code == 200, path
        refused = client.get(path, headers=lacking.bearer)
        assert refused.status_code == 403, path
        assert problem_code(refused) == "insufficient_scope"
    # A key acts with its creator's role, never more.
    staff_key = make_access_key(make_member(billed.tenant_id, Role.staff), ["billing:read"])
    response = client.get(URL, headers=staff_key.bearer)
    assert response.status_code == 403 and problem_code(response) == "forbidden"


def test_anonymous_is_401(app: Flask, billed: Billed) -> None:
    for path in _paths(billed):
        assert make_client(app).get(path).status_code == 401, path


def test_another_tenants_invoice_is_404_everywhere(app: Flask, billed: Billed) -> None:
    ours = admin_client(app, billed.tenant_id)
    theirs = f"{URL}/{billed.other_invoice}"
    for path in (theirs, f"{theirs}/pdf"):
        response = ours.get(path)
        assert response.status_code == 404 and problem_code(response) == "not_found", path
        assert b"Outra Empresa" not in response.data
    listed = {i["id"] for i in all_pages(ours, URL, 200)}
    assert str(billed.other_invoice) not in listed

    # Nor through a key of ours with the scope, nor the other way round.
    key = make_access_key(make_member(billed.tenant_id, Role.admin), ["billing:read"])
    assert make_client(app).get(theirs, headers=key.bearer).status_code == 404
    stranger = admin_client(app, billed.other_tenant_id)
    for path in _paths(billed)[1:]:
        assert stranger.get(path).status_code == 404, path
    their_list = {i["id"] for i in all_pages(stranger, URL, 200)}
    assert their_list == set(invoice_ids(billed.other_tenant_id))
    assert not their_list & set(invoice_ids(billed.tenant_id))
    assert stranger.get(theirs).status_code == 200
