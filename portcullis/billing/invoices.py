"""Issued invoices: read by a tenant's admins and managers, paid or voided by operators.

Payments add up to the total (then the invoice is ``paid``); a payment's reference makes
recording it idempotent. Every change is one of the trigger's allowed transitions; a
refusal by the trigger itself (which the checks here should make unreachable) is a 409 too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from portcullis.audit import service as audit
from portcullis.billing import dunning, pdf
from portcullis.billing.models import TRANSITIONS, Invoice, InvoiceStatus, Payment
from portcullis.callers import Caller
from portcullis.db import system_session, tenant_session
from portcullis.errors import Conflict, Invalid, NotFound
from portcullis.pagination import Page, PageRequest, keyset
from portcullis.tenants import service as tenants

REFUSED_BY_TRIGGER = "PB001"  # migration 0008's SQLSTATE


@dataclass(frozen=True)
class LineView:
    description: str
    quantity: Decimal
    unit_cents: int
    amount_cents: int


@dataclass(frozen=True)
class InvoiceView:
    id: uuid.UUID
    number: str
    period: str
    status: str
    currency: str
    lines: list[LineView]
    total_cents: int
    paid_cents: int
    issued_at: datetime
    due_at: datetime
    paid_at: datetime | None
    voided_at: datetime | None
    void_reason: str | None


def view(invoice: Invoice) -> InvoiceView:
    return InvoiceView(
        invoice.id, invoice.number, invoice.period, invoice.status, invoice.currency,
        [LineView(line.description, line.quantity, line.unit_cents, line.amount_cents)
         for line in invoice.lines],
        invoice.total_cents, invoice.paid_cents, invoice.issued_at, invoice.due_at,
        invoice.paid_at, invoice.voided_at, invoice.void_reason)


def _tenant(caller: Caller) -> uuid.UUID:
    if caller.tenant_id is None:
        raise NotFound("invoice")
    return caller.tenant_id


def list_invoices(caller: Caller, page: PageRequest) -> Page[InvoiceView]:
    """The caller's tenant's invoices, newest first."""
    tenant_id = _tenant(caller)
    with tenant_session(tenant_id) as db:
        found = keyset(db, select(Invoice).where(Invoice.tenant_id == tenant_id),
                       [Invoice.issued_at, Invoice.id], [datetime, uuid.UUID], page)
        return found.map(view)


def _own(db: Session, tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> Invoice:
    invoice = db.get(Invoice, invoice_id)
    if invoice is None or invoice.tenant_id != tenant_id:
        raise NotFound("invoice")
    return invoice


def get_invoice(caller: Caller, invoice_id: uuid.UUID) -> InvoiceView:
    tenant_id = _tenant(caller)
    with tenant_session(tenant_id) as db:
        return view(_own(db, tenant_id, invoice_id))


def render_pdf(caller: Caller, invoice_id: uuid.UUID) -> tuple[str, bytes]:
    """The invoice's number and its PDF document."""
    tenant_id = _tenant(caller)
    with tenant_session(tenant_id) as db:
        invoice = _own(db, tenant_id, invoice_id)
        document = {**view(invoice).__dict__, "billed_to": dict(invoice.billed_to),
                    "lines": [line.__dict__ for line in view(invoice).lines]}
        return invoice.number, pdf.render(document)


# --- operators ---------------------------------------------------------------------------------


def _locked(db: Session, invoice_id: uuid.UUID) -> Invoice:
    """The invoice's row lock, then its tenant's: always in this order and before any audit
    event (the chain's lock comes last everywhere), so payments, voids, the overdue check
    and member changes never deadlock; and two payments settling a tenant's last two
    overdue invoices see each other's commit when deciding to reactivate it."""
    invoice = db.get(Invoice, invoice_id, with_for_update=True, populate_existing=True)
    if invoice is None:
        raise NotFound("invoice")
    tenants.lock(db, invoice.tenant_id)
    return invoice


def _flush(db: Session) -> None:
    try:
        db.flush()
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == REFUSED_BY_TRIGGER:
            raise Conflict("invalid_transition", "The invoice cannot change that way.") from None
        raise


def _details(invoice: Invoice, **more: Any) -> dict[str, Any]:
    return {"number": invoice.number, "status": invoice.status,
            "paid_cents": invoice.paid_cents, "total_cents": invoice.total_cents, **more}


def record_payment(caller: Caller, invoice_id: uuid.UUID, amount_cents: int,
                   reference: str, now: datetime | None = None) -> InvoiceView:
    """Add a payment (an operator's); the same reference again records nothing more."""
    now = now or datetime.now(UTC)
    with system_session() as db:
        invoice = _locked(db, invoice_id)
        actor = caller.for_tenant(invoice.tenant_id)
        earlier = db.scalar(select(Payment).where(Payment.invoice_id == invoice.id,
                                                  Payment.reference == reference))
        if earlier is not None:
            if earlier.amount_cents != amount_cents:
                raise Conflict("payment_reference_reused",
                               "This reference was recorded with another amount.")
            return view(invoice)
        if amount_cents <= 0:
            raise Invalid("invalid_amount", "amount_cents must be a positive integer.")
        if invoice.status == InvoiceStatus.void:
            raise Conflict("invoice_void", "A void invoice takes no payment.")
        unpaid = invoice.total_cents - invoice.paid_cents
        if amount_cents > unpaid:
            raise Conflict("overpayment",
                           f"The payment exceeds what is unpaid ({unpaid} cents).")
        db.add(Payment(tenant_id=invoice.tenant_id, invoice_id=invoice.id,
                       amount_cents=amount_cents, reference=reference))
        invoice.paid_cents += amount_cents
        if invoice.paid_cents == invoice.total_cents:
            invoice.status = InvoiceStatus.paid
            invoice.paid_at = now
        _flush(db)
        audit.record(db, actor, "invoice.payment_recorded",
                     audit.Target("invoice", str(invoice.id)),
                     _details(invoice, amount_cents=amount_cents, reference=reference))
        if invoice.status == InvoiceStatus.paid:
            audit.record(db, actor, "invoice.paid", audit.Target("invoice", str(invoice.id)),
                         _details(invoice))
            dunning.reactivate_if_settled(db, actor, invoice.tenant_id, now)
        return view(invoice)


def void(caller: Caller, invoice_id: uuid.UUID, reason: str,
         now: datetime | None = None) -> InvoiceView:
    """Cancel an open or overdue invoice (an operator's), with the reason kept."""
    now = now or datetime.now(UTC)
    with system_session() as db:
        invoice = _locked(db, invoice_id)
        actor = caller.for_tenant(invoice.tenant_id)
        if InvoiceStatus.void not in TRANSITIONS[InvoiceStatus(invoice.status)]:
            raise Conflict("invalid_transition",
                           f"A {invoice.status} invoice cannot be voided.")
        invoice.status = InvoiceStatus.void
        invoice.voided_at = now
        invoice.void_reason = reason
        _flush(db)
        audit.record(db, actor, "invoice.voided", audit.Target("invoice", str(invoice.id)),
                     _details(invoice, reason=reason))
        dunning.reactivate_if_settled(db, actor, invoice.tenant_id, now)
        return view(invoice)
