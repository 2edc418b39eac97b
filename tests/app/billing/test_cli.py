"""``portcullis billing run | collect-usage | check-overdue``, in process through click's
CliRunner: what each changes, what it prints, its exit code, and a refusal as one line.

The run and the overdue check read the clock, so those tests set it (``service._now``) to a
far-past moment of their own: 2019 for the run, 2013 for the overdue check, which acts on
every invoice due before then (the domain tests' of 2001-2012, none of this directory's
others, issued from 2014 on). Usage is collected for 2020-07-15, a day no run of the suite
bills and no other test reads."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from devstack.stack import LocalStack
from portcullis.billing import service as billing
from portcullis.billing.models import Invoice, StorageUsage
from portcullis.cli import main
from portcullis.db import system_session
from portcullis.storage.models import Bucket
from portcullis.tenants.models import Tenant
from tests.app.billing.helpers import events, invoice_row, open_invoice, utc
from tests.support.factories import make_bucket, make_file, make_profile, make_tenant

pytestmark = pytest.mark.usefixtures("stack")


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["billing", *args])


def _set_clock(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> None:
    monkeypatch.setattr(billing, "_now", lambda: moment)


def _invoices(tenant_id: uuid.UUID) -> int:
    with system_session() as db:
        return db.scalar(select(func.count()).select_from(Invoice)
                         .where(Invoice.tenant_id == tenant_id)) or 0


# --- billing run ---------------------------------------------------------------------------


def test_run_issues_the_months_invoices_once(monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = make_tenant("CLI Run Co", created_at=utc(2019, 5, 1))
    make_profile(tenant)
    now = utc(2019, 6, 2, 4)
    _set_clock(monkeypatch, now)

    result = _invoke("run", "--period", "2019-05")
    assert result.exit_code == 0, result.output
    match = re.fullmatch(r"2019-05: issued (\d+) invoice\(s\) \((\d+) tenant\(s\) had none\)\n",
                         result.output)
    assert match, result.output
    assert int(match[1]) >= 1 and match[1] == match[2]
    invoice = invoice_row(tenant, "2019-05")
    assert invoice.issued_at == now and invoice.number.startswith("INV-2019-")
    [issued] = events(tenant, "invoice.issued")
    assert (issued.actor_type, issued.actor_id) == ("operator", "cli")

    # Run again: nothing left to issue, nothing issued twice.
    again = _invoke("run", "--period", "2019-05")
    assert again.exit_code == 0, again.output
    assert again.output == "2019-05: issued 0 invoice(s) (0 tenant(s) had none)\n"
    assert _invoices(tenant) == 1


def test_run_refuses_a_month_that_is_not_over() -> None:
    """The real clock: this month and the next are refused, on one line, with exit 1."""
    today = datetime.now(UTC)
    tenant = make_tenant("CLI Early Co", created_at=today - timedelta(days=40))
    current = billing.Period.containing(today)
    for period in (current, current.next()):
        result = _invoke("run", "--period", str(period))
        assert result.exit_code == 1, result.output
        lines = result.output.splitlines()
        assert len(lines) == 1 and "not over" in lines[0], result.output
        assert "Traceback" not in result.output
        assert isinstance(result.exception, SystemExit)
    assert _invoices(tenant) == 0


@pytest.mark.parametrize("period", ["2019-13", "2019-5", "19-05", "2019/05", "may", "1999-12",
                                    ""])
def test_run_needs_a_well_formed_period(period: str) -> None:
    result = _invoke("run", "--period", period)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--period'" in result.output
    assert "Traceback" not in result.output


def test_run_needs_a_period() -> None:
    result = _invoke("run")
    assert result.exit_code == 2 and "Missing option '--period'" in result.output


# --- collect-usage --------------------------------------------------------------------------


DAY = date(2020, 7, 15)


def _recorded(bucket_id: uuid.UUID) -> list[tuple[date, int, int]]:
    with system_session() as db:
        return [tuple(r) for r in db.execute(  # type: ignore[misc]
            select(StorageUsage.day, StorageUsage.bytes, StorageUsage.objects)
            .where(StorageUsage.bucket_id == bucket_id))]


def test_collect_usage_records_the_storage_under_the_date(stack: LocalStack) -> None:
    tenant = make_tenant("CLI Usage Co", created_at=utc(2020, 7, 1))
    bucket = make_bucket(tenant)
    first = make_file(tenant, bucket, b"x" * 1000, filename="a.txt", content_type="text/plain")
    with system_session() as db:  # every bucket of a tenant that existed on the day
        buckets = db.scalar(select(func.count()).select_from(Bucket).join(
            Tenant, Tenant.id == Bucket.tenant_id).where(Tenant.created_at < utc(2020, 7, 16)))

    result = _invoke("collect-usage", "--date", DAY.isoformat())
    assert result.exit_code == 0, result.output
    assert result.output == f"2020-07-15: recorded {buckets} bucket(s)\n"
    assert _recorded(bucket) == [(DAY, first.size, 1)]

    # Again for the same day: the figures as they stand now replace the day's, never add.
    second = make_file(tenant, bucket, b"y" * 500, filename="b.txt", content_type="text/plain")
    again = _invoke("collect-usage", "--date", DAY.isoformat())
    assert again.exit_code == 0, again.output
    assert _recorded(bucket) == [(DAY, first.size + second.size, 2)]


@pytest.mark.parametrize("value", ["2000-02-30", "15/06/2000", "yesterday"])
def test_collect_usage_needs_a_well_formed_date(value: str) -> None:
    result = _invoke("collect-usage", "--date", value)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--date'" in result.output


# --- check-overdue ---------------------------------------------------------------------------


def test_check_overdue_marks_and_suspends(monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = make_tenant("CLI Overdue Co", created_at=utc(2013, 1, 1))
    make_profile(tenant)
    invoice_id = open_invoice(tenant, "2013-01", utc(2013, 2, 1, 4))  # due 2013-02-16
    pattern = r"overdue: (\d+), suspended: (\d+), reactivated: (\d+)\n"

    _set_clock(monkeypatch, utc(2013, 2, 20))
    result = _invoke("check-overdue")
    assert result.exit_code == 0, result.output
    counts = re.fullmatch(pattern, result.output)
    assert counts and int(counts[1]) >= 1, result.output
    assert invoice_row(tenant, "2013-01").status == "overdue"
    [marked] = events(tenant, "invoice.overdue")
    assert marked.target_id == str(invoice_id)
    assert (marked.actor_type, marked.actor_id) == ("operator", "cli")
    with system_session() as db:
        assert db.get_one(Tenant, tenant).status == "active"  # not 30 days late yet

    # 30 days after the due date the tenant is suspended.
    _set_clock(monkeypatch, utc(2013, 3, 20))
    result = _invoke("check-overdue")
    assert result.exit_code == 0, result.output
    counts = re.fullmatch(pattern, result.output)
    assert counts and int(counts[2]) >= 1, result.output
    with system_session() as db:
        assert db.get_one(Tenant, tenant).status == "suspended"
    [suspended] = events(tenant, "tenant.suspended")
    assert (suspended.actor_type, suspended.actor_id) == ("operator", "cli")
    assert len(events(tenant, "invoice.overdue")) == 1
