"""Beat's billing entries run on a real worker (the ``billing`` queue): the daily usage
collection, the overdue check and the previous month's run, each idempotent.

Each task takes an optional "now" (beat sends none) so that these tests can pick moments
no other test uses: 2093 for usage, 2025 for the monthly run.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from portcullis.billing import service as billing
from portcullis.billing.models import BillingRun, Invoice, StorageUsage
from portcullis.callers import Caller, Role
from portcullis.db import system_session
from portcullis.jobs.queue import producer
from portcullis.tenants.models import Tenant
from tests.support.factories import make_bucket, make_file, make_member, make_tenant
from tests.support.worker import eventually

pytestmark = pytest.mark.usefixtures("worker")


def _send(task: str, *args: str) -> None:
    producer().send_task(task, args=list(args), ignore_result=True)



def _usage(bucket_id: uuid.UUID, day: date) -> StorageUsage | None:
    with system_session() as db:
        return db.scalar(select(StorageUsage).where(StorageUsage.bucket_id == bucket_id,
                                                    StorageUsage.day == day))


def test_the_daily_collection_records_the_day_that_just_ended() -> None:
    today = date(2093, 7, 15)
    tenant = make_tenant("Usage task Co", created_at=datetime(2093, 7, 1, tzinfo=UTC))
    member = make_member(tenant, Role.admin)
    bucket = make_bucket(member)
    stored = make_file(member, bucket, b"%PDF-1.4 usage", filename="a.pdf",
                       content_type="application/pdf")
    billing.collect_usage(today - timedelta(days=2))  # the last day recorded before

    _send("tasks.billing.collect_usage", today.isoformat())

    row = eventually(lambda: _usage(bucket, today - timedelta(days=1)))
    assert (row.bytes, row.objects) == (stored.size, 1)
    assert _usage(bucket, today) is None  # today is not over


def test_the_monthly_entry_bills_the_previous_month_once() -> None:
    tenant = make_tenant("Monthly task Co", created_at=datetime(2025, 2, 10, tzinfo=UTC))
    now = datetime(2025, 3, 1, 0, 35, tzinfo=UTC)

    def invoices() -> list[Invoice]:
        with system_session() as db:
            return list(db.scalars(select(Invoice).where(Invoice.tenant_id == tenant)))

    _send("tasks.billing.bill_previous_month", now.isoformat())
    [invoice] = eventually(invoices)
    assert invoice.period == "2025-02" and invoice.number.startswith("INV-2025-")
    with system_session() as db:
        assert eventually(lambda: db.get(BillingRun, "2025-02")) is not None

    # Sent again (a later day's catch-up, a duplicate): the period is done, nothing changes.
    _send("tasks.billing.bill_previous_month", now.isoformat())
    time.sleep(2)
    assert [i.id for i in invoices()] == [invoice.id]


def test_the_overdue_check_marks_and_suspends() -> None:
    tenant = make_tenant("Overdue task Co", created_at=datetime(2025, 5, 3, tzinfo=UTC))
    member = make_member(tenant, Role.admin)
    bucket = make_bucket(member)
    with system_session() as db:
        from portcullis.billing.models import TenantUsage

        db.add(TenantUsage(tenant_id=tenant, day=date(2025, 5, 4), sftp_accounts=3))
    billing.run_period(Caller.system(), billing.Period.parse("2025-05"),
                       now=datetime(2025, 6, 2, tzinfo=UTC))
    with system_session() as db:
        invoice = db.scalar(select(Invoice).where(Invoice.tenant_id == tenant))
    assert invoice is not None and invoice.status == "open" and bucket

    _send("tasks.billing.check_overdue", (invoice.due_at + timedelta(days=31)).isoformat())

    def suspended() -> bool:
        with system_session() as db:
            row = db.get(Tenant, tenant)
            return row is not None and row.status == "suspended"

    assert eventually(suspended)
    with system_session() as db:
        assert db.get(Invoice, invoice.id).status == "overdue"
        assert db.get(Tenant, tenant).suspended_by == "overdue"
