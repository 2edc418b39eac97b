"""The monthly run: one invoice per tenant that existed at any time in the period, however
often, concurrently or interrupted the run is repeated.

Tenants are issued in batches, each one transaction that first locks its year's counter
row: runs take turns per batch, each batch sees what earlier ones committed, and a batch
that fails leaves neither invoices nor used numbers behind, so numbers stay gapless.
``(tenant_id, period)`` is unique as the last guard.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from config import get_settings
from portcullis.audit import service as audit
from portcullis.billing import rating
from portcullis.billing.models import (
    BillingProfile,
    BillingRun,
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    InvoiceStatus,
    StorageUsage,
    TenantUsage,
)
from portcullis.billing.rating import Period
from portcullis.callers import Caller
from portcullis.db import system_session
from portcullis.email import service as email
from portcullis.errors import Conflict
from portcullis.storage import service as storage
from portcullis.tenants import service as tenants

BATCH = 250


@dataclass(frozen=True)
class RunResult:
    period: str
    tenants: int
    issued: int


def check_closed(period: Period, now: datetime) -> None:
    now = now.astimezone(UTC)  # periods are UTC months, whatever offset ``now`` has
    if (period.year, period.month) >= (now.year, now.month):
        raise Conflict("period_not_closed",
                       f"{period} is not over yet: only a past month can be billed.")


def run(actor: Caller, period: Period, now: datetime,
        progress: Callable[[int, int], None] | None = None,
        batch: int = BATCH) -> RunResult:
    """Issue the period's missing invoices, as ``actor`` (an operator, or the system for
    beat); ``progress(done, total)`` after each batch."""
    now = now.astimezone(UTC)  # numbers take the UTC year of issue
    check_closed(period, now)
    existing = tenants.existing_before(period.ends_at).subquery("tenant")
    with system_session() as db:
        pending = list(db.execute(
            select(existing.c.id, existing.c.name)
            .where(~select(Invoice.id).where(Invoice.tenant_id == existing.c.id,
                                            Invoice.period == str(period)).exists())
            .order_by(existing.c.id)).tuples())
        usage = _usage(db, period) if pending else {}
    issued = 0
    for start in range(0, len(pending), batch):
        with system_session() as db:
            issued += _issue_batch(db, actor, period, pending[start:start + batch], usage,
                                   now)
        if progress:
            progress(min(start + batch, len(pending)), len(pending))
    with system_session() as db:
        total = db.scalar(select(func.count()).select_from(Invoice)
                          .where(Invoice.period == str(period))) or 0
        db.execute(insert(BillingRun).values(period=str(period), invoices=total)
                   .on_conflict_do_update(index_elements=["period"],
                                          set_={"invoices": total, "finished_at": func.now()}))
    if progress and not pending:
        progress(0, 0)
    return RunResult(str(period), len(pending), issued)


def is_billed(period: Period) -> bool:
    with system_session() as db:
        return db.get(BillingRun, str(period)) is not None


def _next_numbers(db: Session, year: int) -> int:
    """Lock the year's counter until commit; the last number issued so far."""
    db.execute(insert(InvoiceCounter).values(year=year, last=0)
               .on_conflict_do_nothing(index_elements=["year"]))
    return int(db.scalar(select(InvoiceCounter.last).where(InvoiceCounter.year == year)
                         .with_for_update()) or 0)


def _usage(db: Session, period: Period) -> dict[uuid.UUID, rating.Usage]:
    """Every tenant's usage in the period, read once per run: one pass over the period's
    rows (per batch, each statement would scan them all again)."""
    first, last = period.first_day, period.last_day
    stored = dict(db.execute(
        select(StorageUsage.tenant_id, func.sum(StorageUsage.bytes))
        .where(StorageUsage.day.between(first, last))
        .group_by(StorageUsage.tenant_id)).tuples().all())
    egress_rows = storage.egress_per_day()
    served = dict(db.execute(
        select(egress_rows.c.tenant_id, func.sum(egress_rows.c.bytes))
        .where(egress_rows.c.day.between(first, last))
        .group_by(egress_rows.c.tenant_id)).tuples().all())
    accounts = dict(db.execute(
        select(TenantUsage.tenant_id, func.sum(TenantUsage.sftp_accounts))
        .where(TenantUsage.day.between(first, last))
        .group_by(TenantUsage.tenant_id)).tuples().all())
    return {t: rating.Usage(period.days, int(stored.get(t) or 0), int(served.get(t) or 0),
                            int(accounts.get(t) or 0))
            for t in stored.keys() | served.keys() | accounts.keys()}


def billed_to(profile: BillingProfile | None, tenant_name: str) -> dict[str, Any]:
    """The profile as it stands, frozen on the invoice (the PDF shows this)."""
    if profile is None:
        return {"tenant_name": tenant_name}
    return {"tenant_name": tenant_name, "legal_name": profile.legal_name,
            "email": profile.email, "tax_id_type": profile.tax_id_type,
            "tax_id": profile.tax_id, "address": dict(profile.address)}


def _issue_batch(db: Session, actor: Caller, period: Period,
                 batch: Sequence[tuple[uuid.UUID, str]], usage: dict[uuid.UUID, rating.Usage],
                 now: datetime) -> int:
    settings = get_settings()
    names = dict(batch)
    candidates = list(names)
    last = _next_numbers(db, now.year)
    # After the lock: what a concurrent run committed meanwhile is visible now.
    billed = set(db.scalars(select(Invoice.tenant_id).where(
        Invoice.tenant_id.in_(candidates), Invoice.period == str(period))))
    todo = [t for t in candidates if t not in billed]
    if not todo:
        return 0
    profiles = {p.tenant_id: p for p in db.scalars(
        select(BillingProfile).where(BillingProfile.tenant_id.in_(todo)))}
    nothing = rating.Usage(period.days, 0, 0, 0)
    prices = rating.prices_from(settings)
    due_at = now + timedelta(days=settings.INVOICE_DUE_DAYS)
    invoices = []
    for tenant_id in todo:
        last += 1
        figures = usage.get(tenant_id, nothing).as_json()
        lines = rating.lines(figures, prices)
        total = sum(line.amount_cents for line in lines)
        invoice = Invoice(
            id=uuid.uuid4(), tenant_id=tenant_id, number=f"INV-{now.year:04d}-{last:06d}",
            period=str(period), currency=prices["currency"], total_cents=total,
            issued_at=now, due_at=due_at, usage=figures, prices=prices,
            billed_to=billed_to(profiles.get(tenant_id), names.get(tenant_id, "")),
            status=InvoiceStatus.paid if total == 0 else InvoiceStatus.open,
            paid_cents=0, paid_at=now if total == 0 else None)
        invoice.lines = [InvoiceLine(tenant_id=tenant_id, position=n, item=line.item,
                                     description=line.description, quantity=line.quantity,
                                     unit_cents=line.unit_cents,
                                     amount_cents=line.amount_cents)
                         for n, line in enumerate(lines, 1)]
        invoices.append(invoice)
    db.add_all(invoices)
    db.execute(update(InvoiceCounter).where(InvoiceCounter.year == now.year)
               .values(last=last))
    db.flush()
    audit.record_all(db, [
        (actor.for_tenant(invoice.tenant_id), "invoice.issued",
         audit.Target("invoice", str(invoice.id)),
         {"number": invoice.number, "period": invoice.period,
          "total_cents": invoice.total_cents, "status": invoice.status})
        for invoice in invoices])
    for invoice in invoices:
        if invoice.tenant_id in profiles:
            email.queue(db, invoice.tenant_id, "invoice_issued", invoice_id=invoice.id)
    return len(invoices)
