"""An issued invoice never changes but by API.md's status transitions and its payments, the
database itself refusing everything else (migration 0008): its trigger stops even the
owner, who bypasses every grant; the grants stop the application's roles before that.

Raw SQL on psycopg connections, each rolled back at the end whatever it did. The owner is
subject to row-level security (forced), so it sets the tenant to see the invoice, and each
check first proves the row is in reach: a refusal is the rule's, never an empty UPDATE's.
Issuing year 2012 (period 2012-01) is this module's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import errors

from devstack.stack import LocalStack
from portcullis.billing import service as billing
from portcullis.billing.rating import Period
from portcullis.callers import Caller
from portcullis.db.roles import APP_ROLE, SYSTEM_ROLE
from tests.portcullis.billing.helpers import invoice, invoice_of, run, use_storage, utc
from tests.support.factories import make_tenant

PERIOD = Period.parse("2012-01")
REFUSED = "PB001"  # the trigger's SQLSTATE


@dataclass(frozen=True)
class Issued:
    tenant_id: uuid.UUID
    invoice_id: uuid.UUID

    @property
    def params(self) -> dict[str, Any]:
        return {"invoice": self.invoice_id, "tenant": self.tenant_id}


@pytest.fixture
def issued(stack: LocalStack) -> Issued:
    """A fresh open invoice of 100 cents (one storage line) with one 10-cent payment."""
    tenant = make_tenant("Immutable Co", created_at=utc(2011, 12, 1))
    use_storage(tenant, PERIOD, gib=4)
    run(PERIOD, utc(2012, 2, 1, 1))
    invoice_id = invoice_of(tenant, PERIOD).id
    billing.record_payment(Caller.operator(None, label="immutability-tests"), invoice_id, 10,
                           "partial-1", now=utc(2012, 2, 3))
    found = invoice(invoice_id)
    assert (found.status, found.total_cents, found.paid_cents) == ("open", 100, 10)
    assert len(found.lines) == 1
    return Issued(tenant, invoice_id)


@contextmanager
def connected(stack: LocalStack, issued: Issued, role: str | None = None
              ) -> Iterator[psycopg.Connection[Any]]:
    """The owner's connection (as ``role`` if given) in the invoice's tenant, which sees the
    invoice; rolled back and closed afterwards, whatever happened."""
    conn = psycopg.connect(stack["postgres"].url().replace("+psycopg", ""))
    try:
        conn.execute("SET lock_timeout = '10s'")
        if role is not None:
            conn.execute(f"SET ROLE {role}")  # one of the two role names, not input
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(issued.tenant_id),))
        conn.commit()  # the session's settings only: they outlive each check's rollback
        assert reachable(conn, issued) == (1, 1, 1)
        yield conn
    finally:
        conn.rollback()
        conn.close()


def reachable(conn: psycopg.Connection[Any], issued: Issued) -> tuple[int, int, int]:
    """How many of the invoice's row, lines and payments this connection sees."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM invoices WHERE id = %(invoice)s),"
        " (SELECT count(*) FROM invoice_lines WHERE invoice_id = %(invoice)s),"
        " (SELECT count(*) FROM invoice_payments WHERE invoice_id = %(invoice)s)",
        issued.params).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def refusal(conn: psycopg.Connection[Any], statement: str, params: dict[str, Any]
            ) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(statement, params)
    conn.rollback()
    return caught.value


# --- the owner meets the trigger ---------------------------------------------------------------


@pytest.mark.parametrize("column", [
    "id = gen_random_uuid()",
    "tenant_id = gen_random_uuid()",
    "number = 'INV-2012-999999'",
    "period = '2011-12'",
    "currency = 'USD'",
    "total_cents = total_cents + 1",
    "total_cents = 0",
    "issued_at = issued_at - interval '1 day'",
    "due_at = due_at + interval '30 days'",
    "usage = jsonb_set(usage, '{storage_byte_days}', '1')",
    "prices = jsonb_set(prices, '{storage_gib_month_cents}', '1')",
    """billed_to = billed_to || '{"legal_name": "Forged Ltda"}'""",
])
def test_no_defining_column_changes_even_for_the_owner(stack: LocalStack, issued: Issued,
                                                       column: str) -> None:
    with connected(stack, issued) as conn:
        error = refusal(conn, f"UPDATE invoices SET {column} WHERE id = %(invoice)s",  # noqa: S608
                        issued.params)
    assert error.sqlstate == REFUSED, error
    assert invoice(issued.invoice_id).total_cents == 100


@pytest.mark.parametrize("statement", [
    "DELETE FROM invoices WHERE id = %(invoice)s",
    "DELETE FROM invoice_lines WHERE invoice_id = %(invoice)s",
    "UPDATE invoice_lines SET quantity = quantity + 1 WHERE invoice_id = %(invoice)s",
    "UPDATE invoice_lines SET amount_cents = 0 WHERE invoice_id = %(invoice)s",
    "DELETE FROM invoice_payments WHERE invoice_id = %(invoice)s",
    "UPDATE invoice_payments SET amount_cents = amount_cents + 1"
    " WHERE invoice_id = %(invoice)s",
    "UPDATE invoice_payments SET reference = 'forged' WHERE invoice_id = %(invoice)s",
])
def test_invoices_lines_and_payments_are_never_deleted_or_edited(
        stack: LocalStack, issued: Issued, statement: str) -> None:
    with connected(stack, issued) as conn:
        error = refusal(conn, statement, issued.params)
        assert reachable(conn, issued) == (1, 1, 1)
    assert error.sqlstate == REFUSED, error


@pytest.mark.parametrize(("statement", "table"), [
    ("TRUNCATE invoices CASCADE", "invoices"),
    ("TRUNCATE invoice_lines", "invoice_lines"),
    ("TRUNCATE invoice_payments", "invoice_payments"),
])
def test_no_table_is_truncated(stack: LocalStack, issued: Issued, statement: str,
                               table: str) -> None:
    """TRUNCATE skips row triggers and row-level security: each table's statement trigger
    is the one refusing (the cascade's first table is the one named)."""
    with connected(stack, issued) as conn:
        error = refusal(conn, statement, {})
    assert error.sqlstate == REFUSED, error
    assert error.diag.message_primary == f"{table} rows never change"
    assert len(invoice(issued.invoice_id).lines) == 1


def _pay(amount: str, reference: str) -> str:
    """A payment row of ``amount`` (an SQL expression over the invoice's columns)."""
    columns = "id, tenant_id, invoice_id, amount_cents, reference, created_at"
    values = f"gen_random_uuid(), tenant_id, id, {amount}, '{reference}', now()"
    return (f"INSERT INTO invoice_payments ({columns}) SELECT {values}"  # noqa: S608
            " FROM invoices WHERE id = %(invoice)s")


OVERDUE = "UPDATE invoices SET status = 'overdue' WHERE id = %(invoice)s"
VOID = ("UPDATE invoices SET status = 'void', voided_at = now(), void_reason = 'test'"
        " WHERE id = %(invoice)s")
PAY_IN_FULL = ("UPDATE invoices SET status = 'paid', paid_cents = total_cents, paid_at = now()"
               " WHERE id = %(invoice)s")
PAY_ONE_CENT = "UPDATE invoices SET paid_cents = paid_cents + 1 WHERE id = %(invoice)s"
# A payment as the service records it: its row, and the invoice's sum (and status).
PAID = [_pay("total_cents - paid_cents", "rest"), PAY_IN_FULL]
PARTIAL = [_pay("1", "one cent"), PAY_ONE_CENT]
AT_COMMIT = "SET CONSTRAINTS ALL IMMEDIATE"  # the checks deferred to commit, now
NEW_LINE = (
    "INSERT INTO invoice_lines (id, tenant_id, invoice_id, position, item, description,"
    " quantity, unit_cents, amount_cents) VALUES (gen_random_uuid(), %(tenant)s, %(invoice)s,"
    " 9, 'egress', 'Forged', 1, 1, 1)")


@pytest.mark.parametrize(("steps", "status"), [
    ([OVERDUE], "overdue"),
    (PAID, "paid"),
    ([VOID], "void"),
    ([OVERDUE, *PAID], "paid"),
    ([OVERDUE, VOID], "void"),
    (PARTIAL, "open"),
    ([OVERDUE, *PARTIAL], "overdue"),
    ([*PARTIAL, VOID], "void"),
])
def test_allowed_transitions_and_payments_go_through(stack: LocalStack, issued: Issued,
                                                     steps: list[str], status: str) -> None:
    """What the refusals below are measured against: the database lets API.md's changes
    be, up to and including the checks it makes at commit."""
    with connected(stack, issued) as conn:
        for step in steps:
            assert conn.execute(step, issued.params).rowcount == 1
        conn.execute(AT_COMMIT)
        row = conn.execute("SELECT status FROM invoices WHERE id = %(invoice)s",
                           issued.params).fetchone()
        assert row == (status,)


def _set(assignments: str) -> str:
    return f"UPDATE invoices SET {assignments} WHERE id = %(invoice)s"  # noqa: S608


@pytest.mark.parametrize(("steps", "refused"), [
    # Transitions API.md does not have (overdue -> open: this rule alone refuses it).
    ([OVERDUE], _set("status = 'open'")),
    (PAID, _set("status = 'open', paid_cents = 10, paid_at = NULL")),
    (PAID, _set("status = 'open'")),
    ([VOID], _set("status = 'open', voided_at = NULL, void_reason = NULL")),
    (PAID, _set("status = 'void', voided_at = now(), void_reason = 'late'")),
    ([VOID], _set("status = 'paid', paid_cents = total_cents, paid_at = now()")),
    (PAID, _set("status = 'overdue'")),
    ([VOID], _set("status = 'overdue', voided_at = NULL, void_reason = NULL")),
    ([], _set("status = 'bogus'")),
    # A settled invoice does not change at all.
    (PAID, _set("paid_at = paid_at + interval '1 hour'")),
    ([VOID], _set("void_reason = 'another reason'")),
    # Payments add up: never down, never beyond the total, paid exactly at the total.
    ([], _set("paid_cents = paid_cents - 1")),
    ([], _set("paid_cents = total_cents + 1")),
    ([], _set("paid_cents = total_cents")),
    ([], _set("status = 'paid', paid_at = now()")),
    ([], _set("paid_at = now()")),
    # Void is a status with its time and reason, not either alone.
    ([], _set("void_reason = 'not void'")),
    ([], _set("voided_at = now()")),
    ([], _set("status = 'void'")),
])
def test_any_other_change_is_refused(stack: LocalStack, issued: Issued, steps: list[str],
                                     refused: str) -> None:
    with connected(stack, issued) as conn:
        for step in steps:
            assert conn.execute(step, issued.params).rowcount == 1
        error = refusal(conn, refused, issued.params)
    assert error.sqlstate == REFUSED, error
    found = invoice(issued.invoice_id)
    assert (found.status, found.paid_cents) == ("open", 10)


@pytest.mark.parametrize("role", [None, SYSTEM_ROLE])
def test_an_issued_invoice_takes_no_new_line(stack: LocalStack, issued: Issued,
                                             role: str | None) -> None:
    """Lines are written in the transaction that issues their invoice, never after: not by
    the owner, nor by the system role that may insert lines."""
    with connected(stack, issued, role) as conn:
        error = refusal(conn, NEW_LINE, issued.params)
    assert error.sqlstate == REFUSED, error
    assert len(invoice(issued.invoice_id).lines) == 1


@pytest.mark.parametrize("role", [None, SYSTEM_ROLE])
@pytest.mark.parametrize("steps", [
    [PAY_ONE_CENT],  # more said paid than the payments add up to
    [_pay("1", "uncounted")],  # a payment the invoice does not count
    [*PARTIAL, _pay("1", "extra")],
])
def test_paid_cents_is_what_the_payments_add_up_to(stack: LocalStack, issued: Issued,
                                                   role: str | None, steps: list[str]) -> None:
    """Checked when the transaction commits (the payment row and the invoice's sum are two
    statements): each statement goes through, the transaction does not."""
    with connected(stack, issued, role) as conn:
        for step in steps:
            assert conn.execute(step, issued.params).rowcount == 1
        error = refusal(conn, AT_COMMIT, {})
    assert error.sqlstate == REFUSED, error


def test_a_payment_that_does_not_add_up_is_not_committed(stack: LocalStack,
                                                         issued: Issued) -> None:
    with connected(stack, issued, SYSTEM_ROLE) as conn:
        conn.execute(PAY_ONE_CENT, issued.params)
        with pytest.raises(psycopg.Error) as caught:
            conn.commit()
    assert caught.value.sqlstate == REFUSED, caught.value
    assert invoice(issued.invoice_id).paid_cents == 10


# --- the application's roles meet the grants first ---------------------------------------------


INSERT_INVOICE = (
    "INSERT INTO invoices (id, tenant_id, number, period, currency, total_cents, issued_at,"
    " due_at, usage, prices, billed_to, status, paid_cents, paid_at) VALUES"
    " (gen_random_uuid(), %(tenant)s, 'INV-1999-000001', '1999-01', 'BRL', 0, now(), now(),"
    " '{}', '{}', '{}', 'paid', 0, now())")


@pytest.mark.parametrize("statement", [
    OVERDUE,  # a transition the trigger would allow: only the missing grant refuses it
    VOID,
    PAY_ONE_CENT,
    INSERT_INVOICE,
    NEW_LINE,
    "INSERT INTO invoice_payments (id, tenant_id, invoice_id, amount_cents, reference,"
    " created_at) VALUES (gen_random_uuid(), %(tenant)s, %(invoice)s, 1, 'forged', now())",
    "DELETE FROM invoice_payments WHERE invoice_id = %(invoice)s",
])
def test_the_app_role_may_only_read_its_tenants_invoices(stack: LocalStack, issued: Issued,
                                                         statement: str) -> None:
    """The request-serving role sees its tenant's invoice but writes none of billing's
    issued rows: no UPDATE privilege on invoices at all, no INSERT anywhere."""
    with connected(stack, issued, APP_ROLE) as conn:
        error = refusal(conn, statement, issued.params)
    assert isinstance(error, errors.InsufficientPrivilege), error


def test_the_app_role_holds_no_write_privilege_on_invoices(stack: LocalStack,
                                                           issued: Issued) -> None:
    with connected(stack, issued) as conn:
        row = conn.execute(
            "SELECT has_table_privilege(%(role)s, 'invoices', 'UPDATE'),"
            " has_any_column_privilege(%(role)s, 'invoices', 'UPDATE'),"
            " has_any_column_privilege(%(role)s, 'invoices', 'INSERT'),"
            " has_table_privilege(%(role)s, 'invoices', 'SELECT')", {"role": APP_ROLE},
        ).fetchone()
    assert row == (False, False, False, True)


@pytest.mark.parametrize("column", [
    "total_cents", "number", "period", "currency", "issued_at", "due_at", "usage", "prices",
    "billed_to", "tenant_id", "id",
])
def test_the_system_role_cannot_update_what_defines_an_invoice(
        stack: LocalStack, issued: Issued, column: str) -> None:
    """Billing runs and payments run as the system role: it may set the status and payment
    columns only. Even a no-op assignment (which the trigger would let by) is refused."""
    with connected(stack, issued, SYSTEM_ROLE) as conn:
        error = refusal(conn, _set(f"{column} = {column}"), issued.params)
    assert isinstance(error, errors.InsufficientPrivilege), error


@pytest.mark.parametrize("statement", [
    "DELETE FROM invoices WHERE id = %(invoice)s",
    "DELETE FROM invoice_lines WHERE invoice_id = %(invoice)s",
    "TRUNCATE invoice_payments",
])
def test_the_system_role_deletes_nothing(stack: LocalStack, issued: Issued,
                                         statement: str) -> None:
    with connected(stack, issued, SYSTEM_ROLE) as conn:
        error = refusal(conn, statement, issued.params)
    assert isinstance(error, errors.InsufficientPrivilege), error


def test_the_system_role_changes_status_and_payments(stack: LocalStack,
                                                     issued: Issued) -> None:
    """The other side of its column grants: the changes a payment or the overdue check
    makes go through."""
    with connected(stack, issued, SYSTEM_ROLE) as conn:
        for step in [OVERDUE, *PAID]:
            assert conn.execute(step, issued.params).rowcount == 1
        conn.execute(AT_COMMIT)
