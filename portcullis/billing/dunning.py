"""The daily overdue check (API.md's Billing section, in detail) and the reactivation that
a payment or a void triggers at once.

``now`` is a parameter, so the rule can be tested with time moved. Each state change sends
its notice in the same transaction, so a notice goes out once per invoice and state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from portcullis.audit import service as audit
from portcullis.billing.models import Invoice, InvoiceStatus
from portcullis.callers import Caller
from portcullis.db import system_session
from portcullis.email import service as email
from portcullis.tenants import service as tenants

SUSPEND_AFTER = timedelta(days=30)
UNSETTLED = (InvoiceStatus.open, InvoiceStatus.overdue)


@dataclass(frozen=True)
class CheckResult:
    overdue: int
    suspended: int
    reactivated: int


def check(actor: Caller, now: datetime) -> CheckResult:
    """Mark open invoices past due overdue, suspend tenants 30 days past a due date,
    reactivate those the rule suspended that have nothing overdue left."""
    with system_session() as db:
        due = db.scalars(select(Invoice).where(Invoice.status == InvoiceStatus.open,
                                               Invoice.due_at < now)
                         .order_by(Invoice.due_at).with_for_update(skip_locked=True)).all()
        for invoice in due:
            invoice.status = InvoiceStatus.overdue
            email.queue(db, invoice.tenant_id, "invoice_overdue", invoice_id=invoice.id)
        db.flush()
        # All chains' locks at once, in one order (a billing run's batch takes them so too).
        audit.record_all(db, [
            (actor.for_tenant(invoice.tenant_id), "invoice.overdue",
             audit.Target("invoice", str(invoice.id)),
             {"number": invoice.number, "due_at": invoice.due_at.isoformat(),
              "unpaid_cents": invoice.total_cents - invoice.paid_cents})
            for invoice in due])
    suspended = 0
    with system_session() as db:
        late = db.scalars(select(Invoice.tenant_id).distinct().where(
            Invoice.status.in_(UNSETTLED), Invoice.due_at <= now - SUSPEND_AFTER)).all()
        for tenant_id in sorted(late):
            tenants.lock(db, tenant_id)
            if _late(db, tenant_id, now) and tenants.suspend_for_overdue(db, actor, tenant_id):
                email.queue(db, tenant_id, "tenant_suspended")
                suspended += 1
    reactivated = 0
    with system_session() as db:
        for suspended_id in sorted(db.scalars(tenants.suspended_for_overdue()).all()):
            reactivated += reactivate_if_settled(db, actor, suspended_id, now)
    return CheckResult(len(due), suspended, reactivated)


def _late(db: Session, tenant_id: uuid.UUID, now: datetime) -> bool:
    """Still unpaid 30 days past a due date, read under the tenant's lock (a payment that
    settled it since the list was read has committed by now)."""
    return db.scalar(select(Invoice.id).where(
        Invoice.tenant_id == tenant_id, Invoice.status.in_(UNSETTLED),
        Invoice.due_at <= now - SUSPEND_AFTER).limit(1)) is not None


def reactivate_if_settled(db: Session, actor: Caller, tenant_id: uuid.UUID,
                          now: datetime) -> bool:
    """Lift the rule's own suspension of a tenant with no invoice past due left unpaid, in
    the caller's transaction (a payment's, a void's, the daily check's)."""
    unsettled = db.scalar(select(Invoice.id).where(
        Invoice.tenant_id == tenant_id, Invoice.status.in_(UNSETTLED),
        Invoice.due_at < now).limit(1))
    if unsettled is not None:
        return False
    if not tenants.reactivate_after_overdue(db, actor, tenant_id):
        return False
    email.queue(db, tenant_id, "tenant_reactivated")
    return True
