"""Dunning (``service.check_overdue`` with time moved, ``record_payment``, ``void``): an open
invoice past due becomes overdue, a tenant 30 days past a due date is suspended, and once
nothing overdue is left the rule lifts its own suspension, never an operator's. Each change
is audited and noticed to the billing email once; payments add up, idempotent by reference.

A check at ``now`` acts on every invoice due before it, so this module issues in the lowest
years (2001), where only its own invoices are; each test has its own period and asserts on
its own tenants. Notices are counted as the email jobs queued (each is one email); the
tests that read the mail itself wait on the real worker.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from devstack.stack import LocalStack
from portcullis.alerts.models import Alert
from portcullis.billing import service as billing
from portcullis.billing.models import Payment
from portcullis.billing.rating import Period
from portcullis.callers import Caller
from portcullis.db import system_session
from portcullis.errors import Conflict, Invalid
from portcullis.tenants import service as tenants
from portcullis.tenants.models import SuspendedBy, Tenant, TenantStatus
from tests.portcullis.billing.helpers import (
    email_jobs,
    events,
    invoice,
    invoice_of,
    run,
    use_storage,
    utc,
)
from tests.support.factories import make_operator_key, make_profile, make_tenant
from tests.support.mail import wait_for_mail

pytestmark = pytest.mark.usefixtures("stack")

DAY = timedelta(days=1)
SUSPEND_AFTER = 30 * DAY


@dataclass(frozen=True)
class Billed:
    tenant_id: uuid.UUID
    name: str
    email: str
    invoice_id: uuid.UUID
    number: str
    due_at: datetime


def billed(name: str, month: str, gib: int = 40) -> Billed:
    """A tenant with a billing profile and an open invoice for ``month`` of 2001 (25 * ``gib``
    cents), issued at 01:00 on the next month's first day, due 15 days later."""
    period = Period.parse(month)
    tenant = make_tenant(name, created_at=period.starts_at - DAY)
    email = make_profile(tenant, legal_name=f"{name} Ltda")
    use_storage(tenant, period, gib=gib)
    run(period, period.ends_at + timedelta(hours=1))
    issued = invoice_of(tenant, period)
    assert issued.status == "open"
    return Billed(tenant, name, email, issued.id, issued.number, issued.due_at)


def state(tenant_id: uuid.UUID) -> tuple[str, str | None]:
    with system_session() as db:
        tenant = db.get_one(Tenant, tenant_id, populate_existing=True)
        return tenant.status, tenant.suspended_by


def alerts(tenant_id: uuid.UUID) -> list[Alert]:
    with system_session() as db:
        return list(db.scalars(select(Alert).where(Alert.tenant_id == tenant_id,
                                                   Alert.type == "alert.tenant_suspended")))


def payments(invoice_id: uuid.UUID) -> list[tuple[int, str]]:
    with system_session() as db:
        return sorted((p.amount_cents, p.reference) for p in db.scalars(
            select(Payment).where(Payment.invoice_id == invoice_id)))


def suspend(bill: Billed) -> datetime:
    """Move time 30 days past the due date and run the check: the tenant is suspended."""
    now = bill.due_at + SUSPEND_AFTER
    billing.check_overdue(now=now)
    assert state(bill.tenant_id) == ("suspended", "overdue")
    return now


@pytest.fixture
def operator() -> Caller:
    return Caller.operator(make_operator_key("dunning tests").id)


# --- overdue and suspension -------------------------------------------------------------------


@pytest.mark.usefixtures("worker")
def test_an_invoice_past_due_becomes_overdue_once_and_is_noticed(stack: LocalStack) -> None:
    """Past ``due_at`` (not at it), an open invoice is overdue: audited, one notice, however
    often the check runs; its tenant is not suspended for it yet."""
    bill = billed("Late Payer Co", "2001-01")

    billing.check_overdue(now=bill.due_at)
    assert invoice(bill.invoice_id).status == "open"

    result = billing.check_overdue(now=bill.due_at + 5 * DAY)
    assert result.overdue >= 1
    assert invoice(bill.invoice_id).status == "overdue"
    assert state(bill.tenant_id) == ("active", None)
    [event] = events(bill.tenant_id, "invoice.overdue")
    assert (event.actor_type, event.target_id) == ("system", str(bill.invoice_id))
    assert event.details["number"] == bill.number
    assert event.details["unpaid_cents"] == 1000
    message = wait_for_mail(stack, bill.email, f"Portcullis invoice {bill.number} is overdue")
    body = message.get_body(preferencelist=("plain",))
    assert body is not None and "30 days" in body.get_content()

    billing.check_overdue(now=bill.due_at + 6 * DAY)
    assert len(events(bill.tenant_id, "invoice.overdue")) == 1
    assert len(email_jobs(bill.tenant_id, "invoice_overdue", invoice_id=bill.invoice_id)) == 1
    assert events(bill.tenant_id, "tenant.suspended") == []


@pytest.mark.usefixtures("worker")
def test_thirty_days_past_due_suspends_alerts_and_notices_once(stack: LocalStack) -> None:
    bill = billed("Suspended Payer Co", "2001-02")

    billing.check_overdue(now=bill.due_at + SUSPEND_AFTER - timedelta(seconds=1))
    assert invoice(bill.invoice_id).status == "overdue"
    assert state(bill.tenant_id) == ("active", None)

    result = billing.check_overdue(now=bill.due_at + SUSPEND_AFTER)
    assert result.suspended >= 1
    assert state(bill.tenant_id) == ("suspended", SuspendedBy.overdue)
    [event] = events(bill.tenant_id, "tenant.suspended")
    assert (event.actor_type, event.details) == ("system", {"reason": "overdue"})
    [alert] = alerts(bill.tenant_id)
    assert alert.payload["type"] == "alert.tenant_suspended"
    assert bill.name in alert.payload["summary"]
    wait_for_mail(stack, bill.email, f"Portcullis: {bill.name} is suspended")

    billing.check_overdue(now=bill.due_at + SUSPEND_AFTER + 2 * DAY)
    assert state(bill.tenant_id) == ("suspended", SuspendedBy.overdue)
    assert len(events(bill.tenant_id, "tenant.suspended")) == 1
    assert len(alerts(bill.tenant_id)) == 1
    assert len(email_jobs(bill.tenant_id, "tenant_suspended")) == 1
    assert events(bill.tenant_id, "tenant.reactivated") == []


# --- reactivation -----------------------------------------------------------------------------


@pytest.mark.usefixtures("worker")
def test_a_full_payment_reactivates_at_once_a_partial_one_does_not(
        stack: LocalStack, operator: Caller) -> None:
    bill = billed("Paying Back Co", "2001-03")
    now = suspend(bill)

    partial = billing.record_payment(operator, bill.invoice_id, 400, "wire-1", now=now + DAY)
    assert (partial.status, partial.paid_cents, partial.paid_at) == ("overdue", 400, None)
    assert state(bill.tenant_id) == ("suspended", "overdue")
    assert events(bill.tenant_id, "tenant.reactivated") == []

    paid_at = now + 2 * DAY
    full = billing.record_payment(operator, bill.invoice_id, 600, "wire-2", now=paid_at)
    assert (full.status, full.paid_cents, full.paid_at) == ("paid", 1000, paid_at)
    assert state(bill.tenant_id) == ("active", None)
    [event] = events(bill.tenant_id, "tenant.reactivated")
    assert (event.actor_type, event.actor_id) == ("operator", str(operator.credential_id))
    assert event.details == {"reason": "paid", "suspended_by": "overdue"}
    assert [e.details["reference"] for e in events(bill.tenant_id,
                                                   "invoice.payment_recorded")] == [
        "wire-1", "wire-2"]
    assert len(events(bill.tenant_id, "invoice.paid")) == 1
    wait_for_mail(stack, bill.email, f"Portcullis: {bill.name} is active again")

    billing.check_overdue(now=paid_at + DAY)
    assert state(bill.tenant_id) == ("active", None)
    assert len(email_jobs(bill.tenant_id, "tenant_reactivated")) == 1


def test_a_void_reactivates_at_once(operator: Caller) -> None:
    bill = billed("Voided Debt Co", "2001-04")
    now = suspend(bill)

    voided = billing.void(operator, bill.invoice_id, "billed in error", now=now + DAY)

    assert (voided.status, voided.void_reason) == ("void", "billed in error")
    assert state(bill.tenant_id) == ("active", None)
    [event] = events(bill.tenant_id, "tenant.reactivated")
    assert event.actor_type == "operator"
    assert len(email_jobs(bill.tenant_id, "tenant_reactivated")) == 1


def test_a_tenant_stays_suspended_while_another_invoice_is_overdue(operator: Caller) -> None:
    """Paying one of two overdue invoices is not enough; settling the other (void) is."""
    tenant = make_tenant("Two Debts Co", created_at=utc(2001, 4, 30))
    make_profile(tenant)
    may, june = Period.parse("2001-05"), Period.parse("2001-06")
    for period in (may, june):
        use_storage(tenant, period, gib=4)
        run(period, period.ends_at + timedelta(hours=1))
    first, second = invoice_of(tenant, may), invoice_of(tenant, june)
    now = second.due_at + SUSPEND_AFTER
    billing.check_overdue(now=now)
    assert state(tenant) == ("suspended", "overdue")

    billing.record_payment(operator, first.id, first.total_cents, "may", now=now + DAY)
    assert invoice(first.id).status == "paid"
    assert state(tenant) == ("suspended", "overdue")
    billing.check_overdue(now=now + 2 * DAY)
    assert state(tenant) == ("suspended", "overdue")

    billing.void(operator, second.id, "waived", now=now + 3 * DAY)
    assert state(tenant) == ("active", None)
    assert len(events(tenant, "tenant.reactivated")) == 1


def test_the_daily_check_reactivates_a_tenant_settled_otherwise() -> None:
    """A tenant the rule suspended with nothing overdue left (settled by other means than
    a payment or void here) is lifted by the next check; one still owing stays."""
    settled = make_tenant("Settled Co", created_at=utc(2001, 7, 1),
                          status=TenantStatus.suspended, suspended_by=SuspendedBy.overdue)
    owing = billed("Still Owing Co", "2001-07")
    now = suspend(owing)  # the check that suspends one tenant lifts the other
    assert state(settled) == ("active", None)

    billing.check_overdue(now=now + DAY)

    assert state(owing.tenant_id) == ("suspended", "overdue")
    [event] = events(settled, "tenant.reactivated")
    assert (event.actor_type, event.details) == (
        "system", {"reason": "paid", "suspended_by": "overdue"})
    assert len(email_jobs(settled, "tenant_reactivated")) == 1
    assert events(owing.tenant_id, "tenant.reactivated") == []


@pytest.mark.parametrize("operator_first", [True, False])
def test_an_operators_suspension_is_never_lifted_by_payment_or_the_check(
        operator: Caller, operator_first: bool) -> None:
    """Whether the operator suspended before the rule would have, or took over the rule's
    suspension, paying everything leaves the tenant suspended until an operator says."""
    bill = billed(f"Operator Held {operator_first} Co", "2001-08" if operator_first
                  else "2001-09")
    if operator_first:
        tenants.set_status(operator, bill.tenant_id, TenantStatus.suspended)
        billing.check_overdue(now=bill.due_at + SUSPEND_AFTER)
    else:
        suspend(bill)
        tenants.set_status(operator, bill.tenant_id, TenantStatus.suspended)
    now = bill.due_at + SUSPEND_AFTER
    assert state(bill.tenant_id) == ("suspended", SuspendedBy.operator)
    assert len(alerts(bill.tenant_id)) == 1  # one suspension, one alert

    billing.record_payment(operator, bill.invoice_id, 1000, "all of it", now=now + DAY)
    assert invoice(bill.invoice_id).status == "paid"
    assert state(bill.tenant_id) == ("suspended", SuspendedBy.operator)
    billing.check_overdue(now=now + 2 * DAY)
    assert state(bill.tenant_id) == ("suspended", SuspendedBy.operator)
    assert events(bill.tenant_id, "tenant.reactivated") == []
    assert email_jobs(bill.tenant_id, "tenant_reactivated") == []

    tenants.set_status(operator, bill.tenant_id, TenantStatus.active)
    assert state(bill.tenant_id) == ("active", None)


# --- payments and void --------------------------------------------------------------------------


def test_payments_add_up_and_a_reference_is_recorded_once(operator: Caller) -> None:
    bill = billed("Instalments Co", "2001-10")
    when = bill.due_at - DAY

    first = billing.record_payment(operator, bill.invoice_id, 300, "pix-1", now=when)
    assert (first.status, first.paid_cents) == ("open", 300)
    again = billing.record_payment(operator, bill.invoice_id, 300, "pix-1", now=when)
    assert again == first  # the same answer, nothing recorded twice
    assert payments(bill.invoice_id) == [(300, "pix-1")]

    with pytest.raises(Conflict) as reused:
        billing.record_payment(operator, bill.invoice_id, 200, "pix-1", now=when)
    assert reused.value.code == "payment_reference_reused"
    with pytest.raises(Conflict) as over:
        billing.record_payment(operator, bill.invoice_id, 701, "pix-2", now=when)
    assert over.value.code == "overpayment"
    for amount in (0, -5):
        with pytest.raises(Invalid) as invalid:
            billing.record_payment(operator, bill.invoice_id, amount, f"pix-{amount}", now=when)
        assert invalid.value.code == "invalid_amount"
    assert payments(bill.invoice_id) == [(300, "pix-1")]
    assert invoice(bill.invoice_id).paid_cents == 300

    second = billing.record_payment(operator, bill.invoice_id, 450, "pix-2", now=when)
    assert (second.status, second.paid_cents) == ("open", 750)
    last = billing.record_payment(operator, bill.invoice_id, 250, "pix-3", now=when + DAY)
    assert (last.status, last.paid_cents, last.paid_at) == ("paid", 1000, when + DAY)
    assert payments(bill.invoice_id) == [(250, "pix-3"), (300, "pix-1"), (450, "pix-2")]
    with pytest.raises(Conflict) as beyond:
        billing.record_payment(operator, bill.invoice_id, 1, "pix-4", now=when + DAY)
    assert beyond.value.code == "overpayment"

    recorded = events(bill.tenant_id, "invoice.payment_recorded")
    assert [(e.details["amount_cents"], e.actor_type) for e in recorded] == [
        (300, "operator"), (450, "operator"), (250, "operator")]

    with pytest.raises(Conflict) as paid_void:
        billing.void(operator, bill.invoice_id, "too late", now=when + DAY)
    assert paid_void.value.code == "invalid_transition"
    assert invoice(bill.invoice_id).status == "paid"


def test_a_void_invoice_takes_no_payment_and_no_second_void(operator: Caller) -> None:
    bill = billed("Cancelled Co", "2001-11")
    when = bill.due_at - DAY
    billing.record_payment(operator, bill.invoice_id, 100, "before-void", now=when)
    voided = billing.void(operator, bill.invoice_id, "duplicate", now=when)
    assert (voided.status, voided.voided_at, voided.paid_cents) == ("void", when, 100)

    with pytest.raises(Conflict) as paying:
        billing.record_payment(operator, bill.invoice_id, 100, "after-void", now=when)
    assert paying.value.code == "invoice_void"
    with pytest.raises(Conflict) as again:
        billing.void(operator, bill.invoice_id, "again", now=when)
    assert again.value.code == "invalid_transition"

    found = invoice(bill.invoice_id)
    assert (found.status, found.void_reason, found.paid_cents) == ("void", "duplicate", 100)
    assert payments(bill.invoice_id) == [(100, "before-void")]
    [event] = events(bill.tenant_id, "invoice.voided")
    assert event.details["reason"] == "duplicate"
    billing.check_overdue(now=bill.due_at + SUSPEND_AFTER)  # void is never overdue
    assert invoice(bill.invoice_id).status == "void"
    assert state(bill.tenant_id) == ("active", None)
