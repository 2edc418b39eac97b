"""Billing's public face: what the front door, the tasks and the CLI call.

Each function takes who acts (a ``Caller``) where someone does, and owns its unit of work.
Tenant reads run in the tenant's scope; usage collection, billing runs, payments and the
overdue check are cross-tenant work under the system role.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from portcullis.audit import service as audit
from portcullis.billing import dunning, issuing, usage
from portcullis.billing.invoices import (
    InvoiceView,
    LineView,
    get_invoice,
    list_invoices,
    record_payment,
    render_pdf,
    void,
)
from portcullis.billing.models import BillingProfile
from portcullis.billing.rating import Period
from portcullis.billing.tax_ids import TaxIdType, masked, normalise
from portcullis.billing.usage import UsageItem
from portcullis.callers import Caller
from portcullis.db import system_session, tenant_session
from portcullis.errors import Invalid, NotFound
from portcullis.jobs import service as jobs
from portcullis.pagination import Page, PageRequest

__all__ = [
    "MAX_USAGE_DAYS", "RUN_TASK", "CheckResult", "InvoiceView", "LineView", "Period",
    "Profile", "RunResult", "TaxIdType", "UsageItem", "check_overdue", "collect_missing_usage",
    "collect_usage", "ensure_previous_period_billed", "get_invoice", "get_profile",
    "list_invoices", "list_usage", "put_profile", "record_payment", "render_pdf",
    "request_run", "run_job", "run_period", "usage_window", "void",
]

RUN_TASK = "tasks.billing.run_monthly_billing"
MAX_USAGE_DAYS = 366
CheckResult = dunning.CheckResult
RunResult = issuing.RunResult


def _now() -> datetime:
    return datetime.now(UTC)


# --- the billing profile -----------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    legal_name: str
    email: str
    tax_id_type: str
    tax_id: str | None
    address: dict[str, Any]


def _profile(row: BillingProfile) -> Profile:
    return Profile(row.legal_name, row.email, row.tax_id_type, row.tax_id, dict(row.address))


def _tenant(caller: Caller) -> uuid.UUID:
    if caller.tenant_id is None:
        raise NotFound("billing profile")
    return caller.tenant_id


def get_profile(caller: Caller) -> Profile:
    tenant_id = _tenant(caller)
    with tenant_session(tenant_id) as db:
        row = db.get(BillingProfile, tenant_id)
        if row is None:
            raise NotFound("billing profile")
        return _profile(row)


def put_profile(caller: Caller, legal_name: str, email: str, tax_id_type: TaxIdType,
                tax_id: str | None, address: dict[str, Any]) -> Profile:
    """Replace the tenant's profile; the tax id is checked and kept compact, and the audit
    event keeps its last 4 characters only."""
    tenant_id = _tenant(caller)
    compact = normalise(tax_id_type, tax_id)
    with tenant_session(tenant_id) as db:
        row = db.get(BillingProfile, tenant_id, with_for_update=True)
        created = row is None
        if row is None:
            row = BillingProfile(tenant_id=tenant_id)
            db.add(row)
        values = {"legal_name": legal_name, "email": email, "tax_id_type": tax_id_type.value,
                  "tax_id": compact, "address": address}
        changed = sorted(name for name, value in values.items()
                         if created or getattr(row, name) != value)
        for name, value in values.items():
            setattr(row, name, value)
        row.updated_at = _now()
        db.flush()
        audit.record(db, caller, "billing.profile_updated",
                     audit.Target("billing_profile", str(tenant_id)),
                     {"created": created, "changed": changed, "tax_type": tax_id_type.value,
                      "tax_number_masked": masked(compact)})
        return _profile(row)


# --- usage -----------------------------------------------------------------------------------


def collect_usage(day: date) -> int:
    """Record the storage and SFTP accounts as they stand now under ``day`` (replacing that
    day's figures); the number of buckets recorded."""
    with system_session() as db:
        return usage.record_day(db, day)


def collect_missing_usage(today: date | None = None,
                          progress: Callable[[int, int], None] | None = None) -> list[date]:
    """The daily job: the day that just ended, and every missed day since the last one
    recorded (each with the figures as they stand now, the best there is)."""
    today = today or _now().date()
    with system_session() as db:
        days = usage.days_to_record(db, today)
    for n, day in enumerate(days, 1):
        collect_usage(day)
        if progress:
            progress(n, len(days))
    return days


def list_usage(caller: Caller, since: date, until: date, page: PageRequest) -> Page[UsageItem]:
    if until < since:
        raise Invalid("validation_error", "to must not be before from.")
    if (until - since).days + 1 > MAX_USAGE_DAYS:
        raise Invalid("validation_error", f"Ask for at most {MAX_USAGE_DAYS} days at a time.")
    tenant_id = _tenant(caller)
    with tenant_session(tenant_id) as db:
        return usage.list_usage(db, tenant_id, since, until, page)


# --- monthly runs ------------------------------------------------------------------------------


def request_run(caller: Caller, period: Period) -> uuid.UUID:
    """An operator asks for a run: a job (with progress) on the ``billing`` queue."""
    issuing.check_closed(period, _now())
    with system_session() as db:
        job = jobs.create_job(db, tenant_id=None, kind="billing.run", task_name=RUN_TASK,
                              args={"period": str(period)},
                              operator_key_id=caller.credential_id)
        return job.id


def _run_actor(db: Session, job_id: uuid.UUID) -> Caller:
    key_id = jobs.operator_key_of(db, job_id)
    return Caller.operator(key_id) if key_id else Caller.system()


def run_job(job_id: uuid.UUID, args: dict[str, Any],
            progress: Callable[[int], None]) -> dict[str, Any]:
    """The run job's body: its operator is the actor of every invoice it issues."""
    with system_session() as db:
        actor = _run_actor(db, job_id)

    def report(done: int, total: int) -> None:
        progress(int(99 * done / total) if total else 99)

    result = issuing.run(actor, Period.parse(args["period"]), _now(), report)
    return {"period": result.period, "tenants": result.tenants, "issued": result.issued}


def run_period(caller: Caller, period: Period,
               progress: Callable[[int, int], None] | None = None,
               now: datetime | None = None) -> RunResult:
    """Run at once (the CLI, beat, tests)."""
    return issuing.run(caller, period, now or _now(), progress)


def ensure_previous_period_billed(now: datetime | None = None) -> RunResult | None:
    """Beat's daily entry: bill the previous month unless a run finished it already (on the
    1st; later days catch up a run that beat or a worker missed)."""
    now = (now or _now()).astimezone(UTC)
    period = Period.containing(now).previous()
    if issuing.is_billed(period):
        return None
    return issuing.run(Caller.system(), period, now)


# --- dunning -------------------------------------------------------------------------------------


def check_overdue(now: datetime | None = None, actor: Caller | None = None) -> CheckResult:
    return dunning.check(actor or Caller.system(), now or _now())


def usage_window(until: date | None = None, days: int = 30) -> tuple[date, date]:
    """The default ``GET /usage`` window: the last ``days`` days up to today (or up to
    ``until``; from the first day of the calendar at the earliest, never an overflow)."""
    until = until or _now().date()
    return until - timedelta(days=min(days - 1, (until - date.min).days)), until
