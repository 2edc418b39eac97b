"""What the billing route tests share: issuing through a real run, reading the truth around
the API, paging, and the tenant's audit events.

The database is shared by the whole session and a run bills every tenant created before the
period's end, so each caller backdates its tenant, bills a far-past period of its own with
``now`` explicit, and asserts on its own tenant's invoices only.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from portcullis.accounts.models import Role
from portcullis.audit.models import AuditEvent
from portcullis.billing import service as billing
from portcullis.billing.models import Invoice
from portcullis.callers import Caller
from portcullis.db import system_session
from portcullis.jobs.models import Job
from tests.support.factories import make_bucket, make_member, make_session, record_usage
from tests.support.web import make_client

GIB = 2**30
INVOICE_FIELDS = {"id", "number", "period", "status", "currency", "lines", "total_cents",
                  "issued_at", "due_at", "paid_at"}
# Fields the routes answer beyond API.md's list; allowed, nothing else is.
EXTRA_INVOICE_FIELDS = {"paid_cents", "voided_at", "void_reason"}
LINE_FIELDS = {"description", "quantity", "unit_cents", "amount_cents"}


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def invoice_row(tenant_id: uuid.UUID, period: str) -> Invoice:
    """The tenant's invoice for ``period``, read around the API (exactly one)."""
    with system_session() as db:
        rows = list(db.scalars(select(Invoice).where(Invoice.tenant_id == tenant_id,
                                                     Invoice.period == period)))
        assert len(rows) == 1, f"{len(rows)} invoices for {period}"
        db.expunge(rows[0])
        return rows[0]


def invoice_ids(tenant_id: uuid.UUID) -> list[str]:
    """Every invoice of the tenant, newest first: the truth a list must answer."""
    with system_session() as db:
        return [str(i) for i in db.scalars(
            select(Invoice.id).where(Invoice.tenant_id == tenant_id)
            .order_by(Invoice.issued_at.desc(), Invoice.id.desc()))]


def issue(tenant_id: uuid.UUID, period: str, now: datetime) -> uuid.UUID:
    """Run the month for real (every tenant of the period is billed) and answer the id of
    ``tenant_id``'s invoice."""
    billing.run_period(Caller.system(), billing.Period.parse(period), now=now)
    return invoice_row(tenant_id, period).id


def open_invoice(tenant_id: uuid.UUID, period: str, now: datetime,
                 gib: int = 40) -> uuid.UUID:
    """An ``open`` invoice: ``gib`` GiB stored on every day of ``period`` (at the default
    25 cents per GiB-month, 25 * ``gib`` cents)."""
    first = billing.Period.parse(period).first_day
    record_usage(tenant_id, make_bucket(tenant_id), first, billing.Period.parse(period).days,
                 bytes_per_day=gib * GIB, objects=1)
    invoice_id = issue(tenant_id, period, now)
    assert invoice_row(tenant_id, period).status == "open"
    return invoice_id


def admin_client(app: Flask, tenant_id: uuid.UUID, role: Role = Role.admin) -> FlaskClient:
    """A fresh member per client: one test's requests never spend another's rate limit."""
    return make_client(app, make_session(make_member(tenant_id, role)))


def all_pages(client: FlaskClient, url: str, limit: int, *,
              headers: dict[str, str] | None = None,
              params: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every item of a cursor-paginated list, asserting each page's size."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(500):
        query = {"limit": limit, **(params or {}), **({"cursor": cursor} if cursor else {})}
        response = client.get(url, query_string=query, headers=headers or {})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert set(body) == {"items", "next_cursor"}
        assert len(body["items"]) <= limit
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
        assert body["items"], "an empty page with a next cursor"
    raise AssertionError("pagination never ended")


def events(tenant_id: uuid.UUID, action: str) -> list[AuditEvent]:
    """The tenant's audit rows for ``action``, oldest first."""
    with system_session() as db:
        rows = list(db.scalars(select(AuditEvent).where(AuditEvent.tenant_id == tenant_id,
                                                        AuditEvent.action == action)
                               .order_by(AuditEvent.seq)))
        for row in rows:
            db.expunge(row)
        return rows


def api_events(app: Flask, tenant_id: uuid.UUID, action: str) -> list[dict[str, Any]]:
    """The tenant's audit events for ``action`` as its admin reads them, newest first."""
    response = admin_client(app, tenant_id).get("/api/v1/audit-events",
                                                query_string={"action": action})
    assert response.status_code == 200, response.get_json()
    items: list[dict[str, Any]] = response.get_json()["items"]
    return items


def wait_job(job_id: str, timeout: float = 120) -> None:
    """Until the job has finished (polled in the database: no rate limit to spend)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with system_session() as db:
            status = db.scalar(select(Job.status).where(Job.id == uuid.UUID(job_id)))
        if status in ("succeeded", "failed"):
            return
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {status} after {timeout}s")
