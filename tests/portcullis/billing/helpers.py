"""What the billing domain tests share: real runs, and reading the truth around the service.

The database is shared by the whole session: a run bills every tenant created before the
period's end, and the overdue check acts on every invoice due before its ``now``. So each
test backdates its tenants, bills a far-past period of its own with ``now`` explicit (this
package owns the issuing years 2001-2012) and asserts on its own tenants' invoices only.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from portcullis.audit.models import AuditEvent
from portcullis.billing import service as billing
from portcullis.billing.models import Invoice, InvoiceCounter
from portcullis.billing.rating import Period
from portcullis.callers import Caller
from portcullis.db import system_session
from portcullis.jobs.models import Job
from tests.support.factories import make_bucket, record_usage

GIB = 2**30


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def use_storage(tenant_id: uuid.UUID, period: Period, gib: int = 40) -> uuid.UUID:
    """``gib`` GiB stored on every day of ``period`` in a new bucket (at the default 25 cents
    per GiB-month, 25 * ``gib`` cents); the bucket."""
    bucket = make_bucket(tenant_id)
    record_usage(tenant_id, bucket, period.first_day, period.days, bytes_per_day=gib * GIB,
                 objects=1)
    return bucket


def run(period: Period, now: datetime, caller: Caller | None = None) -> billing.RunResult:
    return billing.run_period(caller or Caller.system(), period, now=now)


def invoices_of(tenant_id: uuid.UUID, period: Period | None = None) -> list[Invoice]:
    """The tenant's invoices (for ``period``), detached with their lines, by number."""
    with system_session() as db:
        query = select(Invoice).where(Invoice.tenant_id == tenant_id)
        if period is not None:
            query = query.where(Invoice.period == str(period))
        rows = list(db.scalars(query.order_by(Invoice.number)))
        for row in rows:
            db.expunge(row)
        return rows


def invoice_of(tenant_id: uuid.UUID, period: Period) -> Invoice:
    """The tenant's one invoice for ``period``."""
    rows = invoices_of(tenant_id, period)
    assert len(rows) == 1, f"{len(rows)} invoices for {period}"
    return rows[0]


def invoice(invoice_id: uuid.UUID) -> Invoice:
    with system_session() as db:
        row = db.get_one(Invoice, invoice_id, populate_existing=True)
        db.expunge(row)
        return row


def numbers_of_year(year: int) -> list[int]:
    """The sequence part of every invoice number issued in ``year``, sorted."""
    with system_session() as db:
        numbers = db.scalars(select(Invoice.number).where(Invoice.number.like(f"INV-{year}-%")))
        return sorted(int(n.rsplit("-", 1)[1]) for n in numbers)


def counter_of_year(year: int) -> int | None:
    with system_session() as db:
        return db.scalar(select(InvoiceCounter.last).where(InvoiceCounter.year == year))


def assert_gapless(year: int) -> int:
    """Every number issued in ``year`` is ``1..N`` and the counter says ``N``; answers N."""
    numbers = numbers_of_year(year)
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    assert counter_of_year(year) == len(numbers)
    return len(numbers)


def events(tenant_id: uuid.UUID, action: str) -> list[AuditEvent]:
    """The tenant's own chain's events of ``action``, oldest first."""
    with system_session() as db:
        return list(db.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == tenant_id, AuditEvent.action == action)
            .order_by(AuditEvent.seq)))


def email_jobs(tenant_id: uuid.UUID, email: str, **about: Any) -> list[Job]:
    """The email jobs queued for the tenant of kind ``email`` (and ``about`` its args):
    each is one notice, whether or not a worker has sent it yet."""
    with system_session() as db:
        query = select(Job).where(Job.tenant_id == tenant_id, Job.kind == f"email.{email}")
        for name, value in about.items():
            query = query.where(Job.args[name].astext == str(value))
        return list(db.scalars(query))
