"""What the database keeps true of billing beyond the immutability trigger: an issued
invoice takes no new line, its payments and ``paid_cents`` agree at every commit, lines and
payments can only name their invoice's own tenant, statuses and amounts stay in range; and
a tenant's own scope can neither lift its suspension nor erase the egress it is billed for.

Each check first issues a real invoice (issuing year 2027 is this module's), then tries the
forbidden write with raw SQL as the system role or the app role, the roles the processes
use. Also: the daily collection's catch-up ignores days recorded ahead by hand.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from devstack.stack import LocalStack
from portcullis.billing import service as billing
from portcullis.billing.models import TenantUsage
from portcullis.billing.rating import Period
from portcullis.billing.usage import days_to_record
from portcullis.cli import main
from portcullis.db import system_session
from portcullis.db.roles import APP_ROLE, SYSTEM_ROLE
from tests.portcullis.billing.helpers import invoice_of, run, use_storage, utc
from tests.support.factories import make_bucket, make_tenant, record_usage

PERIOD = Period.parse("2027-01")
REFUSED = "PB001"


@pytest.fixture(scope="module")
def issued(stack: LocalStack) -> tuple[uuid.UUID, uuid.UUID]:
    """(tenant, invoice): an open 100-cent invoice with one storage line."""
    tenant = make_tenant("Integrity Co", created_at=utc(2026, 12, 20))
    use_storage(tenant, PERIOD, gib=4)
    run(PERIOD, utc(2027, 2, 1, 1))
    invoice = invoice_of(tenant, PERIOD)
    assert (invoice.status, invoice.total_cents, len(invoice.lines)) == ("open", 100, 1)
    return tenant, invoice.id


@contextmanager
def as_role(stack: LocalStack, role: str, tenant: uuid.UUID) -> Iterator[psycopg.Connection[Any]]:
    conn = psycopg.connect(stack["postgres"].url().replace("+psycopg", ""))
    try:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(f"SET ROLE {role}")  # one of the two role names, not input
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
        conn.commit()
        yield conn
    finally:
        conn.rollback()
        conn.close()


def _refused(conn: psycopg.Connection[Any], statement: str, params: dict[str, Any],
             *, at_commit: bool = False) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(statement, params)
        if at_commit:
            conn.commit()
    conn.rollback()
    return caught.value


LINE = ("INSERT INTO invoice_lines (id, tenant_id, invoice_id, position, item, description,"
        " quantity, unit_cents, amount_cents) VALUES (gen_random_uuid(), %(tenant)s,"
        " %(invoice)s, 9, 'storage', 'Forged', 1, 1, 1)")
PAYMENT = ("INSERT INTO invoice_payments (id, tenant_id, invoice_id, amount_cents, reference)"
           " VALUES (gen_random_uuid(), %(tenant)s, %(invoice)s, 50, 'forged')")


def test_an_issued_invoice_takes_no_new_line(stack: LocalStack,
                                             issued: tuple[uuid.UUID, uuid.UUID]) -> None:
    tenant, invoice = issued
    params = {"tenant": tenant, "invoice": invoice}
    with as_role(stack, SYSTEM_ROLE, tenant) as conn:
        plain = _refused(conn, LINE, params)
        # Touching the invoice first (a new row version in this transaction) changes nothing.
        conn.execute("UPDATE invoices SET status = status WHERE id = %(invoice)s", params)
        touched = _refused(conn, LINE, params)
    assert plain.sqlstate == REFUSED and touched.sqlstate == REFUSED, (plain, touched)
    assert len(invoice_of(tenant, PERIOD).lines) == 1


def test_the_issuing_transaction_is_the_databases_to_say(
        stack: LocalStack, issued: tuple[uuid.UUID, uuid.UUID]) -> None:
    tenant, invoice = issued
    with as_role(stack, SYSTEM_ROLE, tenant) as conn:
        error = _refused(conn, "UPDATE invoices SET issued_xact = issued_xact + 1"
                         " WHERE id = %(invoice)s", {"invoice": invoice})
    assert error.sqlstate == "42501", error  # no grant on it, and the trigger besides


def test_a_line_or_payment_cannot_name_another_tenant(
        stack: LocalStack, issued: tuple[uuid.UUID, uuid.UUID]) -> None:
    _tenant, invoice = issued
    other = make_tenant("Integrity Other Co")
    with as_role(stack, SYSTEM_ROLE, other) as conn:
        error = _refused(conn, PAYMENT, {"tenant": other, "invoice": invoice})
    assert error.sqlstate == "23503", error  # the (invoice, tenant) foreign key


def test_payments_and_paid_cents_agree_at_commit(stack: LocalStack,
                                                 issued: tuple[uuid.UUID, uuid.UUID]) -> None:
    tenant, invoice = issued
    params = {"tenant": tenant, "invoice": invoice}
    with as_role(stack, SYSTEM_ROLE, tenant) as conn:
        # A payment the invoice does not count, and a count no payment makes up.
        payment = _refused(conn, PAYMENT, params, at_commit=True)
        paid = _refused(conn, "UPDATE invoices SET paid_cents = 50 WHERE id = %(invoice)s",
                        params, at_commit=True)
        # Both together are what the service does.
        conn.execute(PAYMENT, params)
        conn.execute("UPDATE invoices SET paid_cents = 50 WHERE id = %(invoice)s", params)
        conn.rollback()
    assert payment.sqlstate == REFUSED and paid.sqlstate == REFUSED
    assert invoice_of(tenant, PERIOD).paid_cents == 0


@pytest.mark.parametrize(("status", "total", "paid"), [("bogus", 0, 0), ("open", -5, 0),
                                                      ("open", 10, 20)])
def test_statuses_and_amounts_stay_in_range(stack: LocalStack, status: str, total: int,
                                            paid: int) -> None:
    tenant = make_tenant("Integrity Range Co")
    with as_role(stack, SYSTEM_ROLE, tenant) as conn:
        error = _refused(conn, (
            "INSERT INTO invoices (id, tenant_id, number, period, currency, status, total_cents,"
            " paid_cents, issued_at, due_at, usage, prices, billed_to) VALUES"
            " (gen_random_uuid(), %(tenant)s, 'INV-1999-000001', '1999-01', 'BRL', %(status)s,"
            " %(total)s, %(paid)s, now(), now(), '{}', '{}', '{}')"),
            {"tenant": tenant, "status": status, "total": total, "paid": paid})
    assert error.sqlstate == "23514", error  # a CHECK constraint


def test_a_tenant_cannot_lift_its_own_suspension(stack: LocalStack) -> None:
    tenant = make_tenant("Integrity Suspended Co")
    with as_role(stack, APP_ROLE, tenant) as conn:
        assert conn.execute("SELECT id FROM tenants WHERE id = %(t)s FOR NO KEY UPDATE",
                            {"t": tenant}).fetchall() == [(tenant,)]  # it may lock its row
        conn.execute("UPDATE tenants SET name = 'Renamed' WHERE id = %(t)s", {"t": tenant})
        conn.rollback()
        for column in ("status = 'active'", "suspended_by = NULL"):
            error = _refused(conn, f"UPDATE tenants SET {column} WHERE id = %(t)s",  # noqa: S608
                             {"t": tenant})
            assert error.sqlstate == "42501", error  # insufficient privilege


def test_a_tenant_cannot_erase_its_billed_egress(stack: LocalStack) -> None:
    tenant = make_tenant("Integrity Egress Co")
    bucket = make_bucket(tenant)
    record_usage(tenant, bucket, date(2027, 1, 5), 1, egress_per_day=1000)
    with as_role(stack, APP_ROLE, tenant) as conn:
        assert conn.execute("SELECT count(*) FROM egress_daily WHERE bucket_id = %(b)s",
                            {"b": bucket}).fetchone() == (1,)
        error = _refused(conn, "DELETE FROM egress_daily WHERE bucket_id = %(b)s",
                         {"b": bucket})
    assert error.sqlstate == "42501", error


def test_days_recorded_ahead_do_not_stop_the_daily_collection(stack: LocalStack) -> None:
    # 2097 is this test's: the last day recorded before "today" is the 2nd; one recorded
    # ahead by hand (the 20th) must not hide the 3rd and 4th.
    billing.collect_usage(date(2097, 1, 2))
    billing.collect_usage(date(2097, 1, 20))
    with system_session() as db:
        assert db.query(TenantUsage).filter(TenantUsage.day == date(2097, 1, 20)).count()
        assert days_to_record(db, date(2097, 1, 5)) == [date(2097, 1, 3), date(2097, 1, 4)]


def test_collect_usage_refuses_the_last_day_of_the_calendar(stack: LocalStack) -> None:
    result = CliRunner().invoke(main, ["billing", "collect-usage", "--date", "9999-12-31"])
    assert result.exit_code == 2 and "Traceback" not in result.output
