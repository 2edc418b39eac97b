"""The operator's billing routes: POST /operator/billing-runs (a job the real worker runs,
refused for a month that is not over), /operator/invoices/{id}/payments (payments add up,
idempotent per reference, never past the total) and /operator/invoices/{id}/void; each
audited in the tenant's own events as the operator key, and only for operator keys.

Payments and voids bill far-past periods of 2017 and 2018 with ``now`` explicit; the route
runs with the real clock, so only the run test bills last month, and it asserts on its job
and its own tenant's invoice alone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from devstack.stack import LocalStack
from portcullis import secrets_gen
from portcullis.accounts.models import Role
from portcullis.billing.models import Payment
from portcullis.billing.rating import Period
from portcullis.db import system_session
from portcullis.jobs.models import Job
from tests.app.billing.helpers import (
    EXTRA_INVOICE_FIELDS,
    GIB,
    INVOICE_FIELDS,
    api_events,
    events,
    invoice_row,
    issue,
    open_invoice,
    utc,
    wait_job,
)
from tests.support.factories import (
    Key,
    make_access_key,
    make_bucket,
    make_member,
    make_operator_key,
    make_session,
    make_tenant,
    record_usage,
)
from tests.support.web import make_client, problem_code

RUNS = "/api/v1/operator/billing-runs"
OPERATOR_IP = "192.0.2.71"


def _post(app: Flask, key: Key, path: str, body: Any) -> TestResponse:
    return make_client(app, ip=OPERATOR_IP).post(path, headers=key.bearer, json=body)


def _pay(app: Flask, key: Key, invoice_id: uuid.UUID | str, amount: Any,
         reference: Any = "ref-1") -> TestResponse:
    return _post(app, key, f"/api/v1/operator/invoices/{invoice_id}/payments",
                 {"amount_cents": amount, "reference": reference})


def _void(app: Flask, key: Key, invoice_id: uuid.UUID | str,
          reason: Any = "issued in error") -> TestResponse:
    return _post(app, key, f"/api/v1/operator/invoices/{invoice_id}/void", {"reason": reason})


def _payments(invoice_id: uuid.UUID) -> int:
    with system_session() as db:
        return db.scalar(select(func.count()).select_from(Payment)
                         .where(Payment.invoice_id == invoice_id)) or 0


def _operator_jobs(key: Key) -> int:
    with system_session() as db:
        return db.scalar(select(func.count()).select_from(Job)
                         .where(Job.created_by_operator_key_id == key.id)) or 0


# --- billing runs ------------------------------------------------------------------------


@pytest.mark.usefixtures("worker")
def test_a_run_is_a_job_the_worker_finishes(app: Flask, stack: LocalStack) -> None:
    last_month = Period.containing(datetime.now(UTC)).previous()
    tenant = make_tenant("Run Route Co", created_at=last_month.starts_at)
    record_usage(tenant, make_bucket(tenant), last_month.first_day, last_month.days,
                 bytes_per_day=4 * GIB)
    key = make_operator_key()

    response = _post(app, key, RUNS, {"period": str(last_month)})
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert set(body) == {"job_id"}
    wait_job(body["job_id"])
    job = make_client(app, ip=OPERATOR_IP).get(f"/api/v1/jobs/{body['job_id']}",
                                               headers=key.bearer)
    assert job.status_code == 200, job.get_json()
    state = job.get_json()
    assert state["status"] == "succeeded", state
    assert state["progress"] == 100 and state["kind"] == "billing.run"
    assert state["result"]["period"] == str(last_month)
    assert state["result"]["issued"] >= 1

    invoice = invoice_row(tenant, str(last_month))
    assert invoice.total_cents == 100 and invoice.status == "open"
    [issued] = events(tenant, "invoice.issued")
    assert (issued.actor_type, issued.actor_id) == ("operator", str(key.id))

    # Another operator's key does not see the job; a second run issues nothing more.
    other = make_operator_key()
    assert make_client(app).get(f"/api/v1/jobs/{body['job_id']}",
                                headers=other.bearer).status_code == 404
    again = _post(app, key, RUNS, {"period": str(last_month)})
    assert again.status_code == 202
    wait_job(again.get_json()["job_id"])
    assert invoice_row(tenant, str(last_month)).id == invoice.id
    assert len(events(tenant, "invoice.issued")) == 1


def test_a_month_that_is_not_over_is_409(app: Flask) -> None:
    key = make_operator_key()
    current = Period.containing(datetime.now(UTC))
    for period in (current, current.next(), Period(current.year + 5, 1)):
        response = _post(app, key, RUNS, {"period": str(period)})
        assert response.status_code == 409, (period, response.get_json())
        assert problem_code(response) == "period_not_closed"
    assert _operator_jobs(key) == 0


@pytest.mark.parametrize("body", [
    {"period": "2026-13"}, {"period": "2026-00"}, {"period": "26-11"}, {"period": "2026/11"},
    {"period": "2026-1"}, {"period": "1999-12"}, {"period": 202611}, {"period": ""},
    {"period": "2026-11-01"}, {}, {"period": "2015-03", "tenant": "all"},
])
def test_a_malformed_period_is_400(app: Flask, body: dict[str, Any]) -> None:
    key = make_operator_key()
    response = _post(app, key, RUNS, body)
    assert response.status_code == 400, response.get_json()
    assert problem_code(response) == "validation_error"
    assert _operator_jobs(key) == 0


# --- who may use the operator routes -----------------------------------------------------------


def _operator_routes() -> list[tuple[str, dict[str, Any]]]:
    invoice = uuid.uuid4()
    return [(RUNS, {"period": "2015-03"}),
            (f"/api/v1/operator/invoices/{invoice}/payments",
             {"amount_cents": 1, "reference": "x"}),
            (f"/api/v1/operator/invoices/{invoice}/void", {"reason": "x"})]


@pytest.mark.parametrize(("path", "body"), _operator_routes())
def test_only_operator_keys_are_accepted(app: Flask, stack: LocalStack, path: str,
                                         body: dict[str, Any]) -> None:
    tenant = make_tenant("Not An Operator Co")
    admin = make_session(make_member(tenant, Role.admin))
    by_admin = make_client(app, admin).post(path, json=body,
                                            headers={"X-CSRF-Token": admin.csrf})
    assert by_admin.status_code == 403 and problem_code(by_admin) == "forbidden"
    key = make_access_key(admin, ["billing:read", "jobs:read", "audit:read"])
    by_key = make_client(app).post(path, json=body, headers=key.bearer)
    assert by_key.status_code == 403 and problem_code(by_key) == "forbidden"
    assert make_client(app).post(path, json=body).status_code == 401
    forged = make_client(app).post(path, json=body, headers={
        "Authorization": f"Bearer {secrets_gen.new_token('pco_')}"})
    assert forged.status_code == 401


def test_an_operator_key_is_refused_on_tenant_billing_routes(app: Flask) -> None:
    key = make_operator_key()
    client = make_client(app, ip=OPERATOR_IP)
    for path in ("/api/v1/invoices", f"/api/v1/invoices/{uuid.uuid4()}", "/api/v1/usage",
                 "/api/v1/billing/profile"):
        assert client.get(path, headers=key.bearer).status_code == 401, path


# --- payments -----------------------------------------------------------------------------------


def test_payments_add_up_to_paid(app: Flask, stack: LocalStack) -> None:
    tenant = make_tenant("Paying Co", created_at=utc(2017, 1, 1))
    invoice_id = open_invoice(tenant, "2017-01", utc(2017, 2, 1, 4))  # 1000 cents
    key = make_operator_key()

    first = _pay(app, key, invoice_id, 400, "wire-1")
    assert first.status_code == 200, first.get_json()
    body = first.get_json()
    assert INVOICE_FIELDS <= set(body) <= INVOICE_FIELDS | EXTRA_INVOICE_FIELDS
    assert body["id"] == str(invoice_id) and body["total_cents"] == 1000
    assert body["status"] == "open" and body["paid_at"] is None
    assert body["paid_cents"] == 400

    # The same reference again records nothing more.
    again = _pay(app, key, invoice_id, 400, "wire-1")
    assert again.status_code == 200 and again.get_json()["paid_cents"] == 400
    assert _payments(invoice_id) == 1

    over = _pay(app, key, invoice_id, 601, "wire-2")
    assert over.status_code == 409 and problem_code(over) == "overpayment"
    assert invoice_row(tenant, "2017-01").paid_cents == 400

    last = _pay(app, key, invoice_id, 600, "wire-2")
    assert last.status_code == 200, last.get_json()
    paid = last.get_json()
    assert paid["status"] == "paid" and paid["paid_cents"] == 1000
    assert paid["paid_at"] is not None
    assert _payments(invoice_id) == 2
    extra = _pay(app, key, invoice_id, 1, "wire-3")
    assert extra.status_code == 409 and problem_code(extra) == "overpayment"

    # The tenant's admin reads the same invoice, paid.
    admin = make_session(make_member(tenant, Role.admin))
    read = make_client(app, admin).get(f"/api/v1/invoices/{invoice_id}").get_json()
    assert read["status"] == "paid" and read["paid_at"] == paid["paid_at"]

    # Audited in the tenant's own events, as the operator key.
    recorded = api_events(app, tenant, "invoice.payment_recorded")
    assert len(recorded) == 2
    assert [e["details"]["amount_cents"] for e in recorded] == [600, 400]
    assert [e["details"]["reference"] for e in recorded] == ["wire-2", "wire-1"]
    [settled] = api_events(app, tenant, "invoice.paid")
    for event in [*recorded, settled]:
        assert event["actor"] == {"type": "operator", "id": str(key.id)}
        assert event["target"] == {"type": "invoice", "id": str(invoice_id)}
        assert event["ip"] == OPERATOR_IP
        assert key.secret not in str(event)


def test_an_amount_must_be_a_positive_integer(app: Flask, stack: LocalStack) -> None:
    tenant = make_tenant("Amount Co", created_at=utc(2017, 3, 1))
    invoice_id = open_invoice(tenant, "2017-03", utc(2017, 4, 1, 4))
    key = make_operator_key()
    for amount, code in ((0, "invalid_amount"), (-100, "invalid_amount"),
                         ("100", "validation_error"), (10.5, "validation_error"),
                         (None, "validation_error"), (True, "validation_error")):
        response = _pay(app, key, invoice_id, amount, f"amount-{amount}")
        assert response.status_code == 400, (amount, response.get_json())
        assert problem_code(response) == code, amount
    assert _payments(invoice_id) == 0
    assert invoice_row(tenant, "2017-03").paid_cents == 0
    assert events(tenant, "invoice.payment_recorded") == []


@pytest.mark.parametrize("body", [
    {"amount_cents": 100}, {"amount_cents": 100, "reference": ""},
    {"amount_cents": 100, "reference": "x" * 101},
    {"amount_cents": 100, "reference": "r", "currency": "BRL"},
])
def test_invalid_payment_bodies_are_400(app: Flask, stack: LocalStack,
                                        body: dict[str, Any]) -> None:
    response = _post(app, make_operator_key(),
                     f"/api/v1/operator/invoices/{uuid.uuid4()}/payments", body)
    assert response.status_code == 400 and problem_code(response) == "validation_error"


def test_an_unknown_invoice_is_404(app: Flask) -> None:
    key = make_operator_key()
    for response in (_pay(app, key, uuid.uuid4(), 100), _void(app, key, uuid.uuid4()),
                     _pay(app, key, "not-a-uuid", 100)):
        assert response.status_code == 404, response.get_json()


# --- voids ---------------------------------------------------------------------------------------


def test_a_void_is_final(app: Flask, stack: LocalStack) -> None:
    tenant = make_tenant("Voiding Co", created_at=utc(2018, 1, 1))
    invoice_id = open_invoice(tenant, "2018-01", utc(2018, 2, 1, 4))
    key = make_operator_key()
    assert _pay(app, key, invoice_id, 100, "partial").status_code == 200

    voided = _void(app, key, invoice_id, "duplicate of a manual invoice")
    assert voided.status_code == 200, voided.get_json()
    body = voided.get_json()
    assert INVOICE_FIELDS <= set(body) <= INVOICE_FIELDS | EXTRA_INVOICE_FIELDS
    assert body["id"] == str(invoice_id) and body["status"] == "void"
    assert body["paid_at"] is None

    twice = _void(app, key, invoice_id, "again")
    assert twice.status_code == 409 and problem_code(twice) == "invalid_transition"
    paying = _pay(app, key, invoice_id, 100, "after-void")
    assert paying.status_code == 409 and problem_code(paying) == "invoice_void"
    assert _payments(invoice_id) == 1
    row = invoice_row(tenant, "2018-01")
    assert row.status == "void" and row.void_reason == "duplicate of a manual invoice"
    assert row.voided_at is not None and row.paid_cents == 100

    [event] = api_events(app, tenant, "invoice.voided")
    assert event["actor"] == {"type": "operator", "id": str(key.id)}
    assert event["target"] == {"type": "invoice", "id": str(invoice_id)}
    assert event["details"]["reason"] == "duplicate of a manual invoice"


def test_a_paid_invoice_cannot_be_voided(app: Flask, stack: LocalStack) -> None:
    tenant = make_tenant("Paid Then Void Co", created_at=utc(2018, 3, 1))
    # No usage in the month: a zero invoice, issued paid.
    invoice_id = issue(tenant, "2018-03", utc(2018, 4, 1, 4))
    response = _void(app, make_operator_key(), invoice_id)
    assert response.status_code == 409 and problem_code(response) == "invalid_transition"
    assert invoice_row(tenant, "2018-03").status == "paid"
    assert events(tenant, "invoice.voided") == []


def test_a_void_needs_a_printable_reason(app: Flask, stack: LocalStack) -> None:
    tenant = make_tenant("Reasonless Co", created_at=utc(2018, 5, 1))
    invoice_id = open_invoice(tenant, "2018-05", utc(2018, 6, 1, 4))
    key = make_operator_key()
    for body in ({"reason": ""}, {"reason": "  "}, {"reason": "x" * 501},
                 {"reason": "line\nbreak"}, {"reason": None}, {},
                 {"reason": "ok", "refund": True}):
        response = _post(app, key, f"/api/v1/operator/invoices/{invoice_id}/void", body)
        assert response.status_code == 400, (body, response.get_json())
        assert problem_code(response) == "validation_error"
    assert invoice_row(tenant, "2018-05").status == "open"
    assert events(tenant, "invoice.voided") == []
