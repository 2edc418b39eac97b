"""Rating (``portcullis.billing.rating``): calendar-month periods, and an invoice's lines from
its usage figures and prices exactly as API.md computes them, in ``Decimal`` and integers
only, quantities half up to 9 places and amounts half up to cents; an issued invoice re-rates
to its own lines from what it stores, whatever the prices are today."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from config import get_settings
from portcullis.billing.rating import GIB, Line, Period, lines, prices_from
from portcullis.callers import Caller
from tests.portcullis.billing.helpers import invoice_of, run, utc
from tests.support.factories import make_bucket, make_tenant, record_usage
from tests.support.web import settings_env

PRICES: dict[str, Any] = {"currency": "BRL", "storage_gib_month_cents": 25,
                          "egress_gib_cents": 10, "sftp_account_month_cents": 500}
MIB = 2**20


def usage(days: int = 30, storage: int = 0, egress: int = 0, accounts: int = 0
          ) -> dict[str, int]:
    return {"days": days, "storage_byte_days": storage, "egress_bytes": egress,
            "sftp_account_days": accounts}


def only(found: list[Line]) -> Line:
    assert len(found) == 1, found
    return found[0]


# --- periods ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "year", "month"), [
    ("2024-02", 2024, 2), ("2000-01", 2000, 1), ("2026-12", 2026, 12)])
def test_a_period_is_parsed_and_printed_as_yyyy_mm(text: str, year: int, month: int) -> None:
    period = Period.parse(text)
    assert (period.year, period.month) == (year, month)
    assert str(period) == text


@pytest.mark.parametrize("text", ["2024-2", "24-02", "2024-13", "2024-00", "1999-12",
                                  "2024/02", "2024-02-01", "abcd-ef", "", "202402"])
def test_anything_but_a_month_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        Period.parse(text)


@pytest.mark.parametrize(("text", "days"), [
    ("2024-02", 29), ("2023-02", 28), ("2000-02", 29), ("2100-02", 28), ("2024-01", 31),
    ("2024-04", 30), ("2024-12", 31)])
def test_days_count_the_calendar_month(text: str, days: int) -> None:
    """February has 29 days in a leap year (2000 was one, 2100 will not be)."""
    period = Period.parse(text)
    assert period.days == days
    assert period.first_day == date(period.year, period.month, 1)
    assert period.last_day == date(period.year, period.month, days)


@pytest.mark.parametrize(("text", "after", "before"), [
    ("2024-01", "2024-02", "2023-12"), ("2024-12", "2025-01", "2024-11"),
    ("2024-02", "2024-03", "2024-01"), ("2024-11", "2024-12", "2024-10")])
def test_next_and_previous_cross_years(text: str, after: str, before: str) -> None:
    period = Period.parse(text)
    assert str(period.next()) == after
    assert str(period.previous()) == before
    assert period.next().previous() == period == period.previous().next()


def test_a_period_spans_its_month_in_utc() -> None:
    period = Period.parse("2024-02")
    assert period.starts_at == utc(2024, 2, 1)
    assert period.ends_at == utc(2024, 3, 1)
    assert Period.containing(utc(2024, 2, 29, 23, 59, 59)) == period
    assert Period.containing(date(2024, 3, 1)) == period.next()


# --- lines -------------------------------------------------------------------------------------


def test_storage_is_the_mean_over_every_day_of_the_period() -> None:
    """10 GiB on 15 of 30 days: a day with no record counts as zero, so 5 GiB-months."""
    line = only(lines(usage(30, storage=15 * 10 * GIB), PRICES))
    assert (line.item, line.description) == ("storage", "Storage (GiB-months)")
    assert line.quantity == Decimal("5.000000000")
    assert (line.unit_cents, line.amount_cents) == (25, 125)


def test_the_same_byte_days_weigh_less_in_a_longer_month() -> None:
    """A 29-day February and a 31-day month divide by their own number of days."""
    feb = only(lines(usage(29, storage=29 * GIB), PRICES))
    jan = only(lines(usage(31, storage=29 * GIB), PRICES))
    assert feb.quantity == Decimal("1.000000000")
    assert jan.quantity == Decimal("0.935483871")  # 29/31 = 0.93548387096...


def test_egress_is_in_gib() -> None:
    line = only(lines(usage(egress=3 * GIB + GIB // 2), PRICES))
    assert (line.item, line.description) == ("egress", "Egress through share links (GiB)")
    assert line.quantity == Decimal("3.500000000")
    assert (line.unit_cents, line.amount_cents) == (10, 35)


def test_sftp_accounts_are_the_mean_daily_count() -> None:
    """2 accounts on 10 of 31 days: 20/31 account-months."""
    line = only(lines(usage(31, accounts=20), PRICES))
    assert (line.item, line.description) == ("sftp_accounts", "SFTP accounts (account-months)")
    assert line.quantity == Decimal("0.645161290")
    assert (line.unit_cents, line.amount_cents) == (500, 323)  # 322.580645 rounds up


def test_quantity_is_rounded_half_up_at_the_ninth_place() -> None:
    """1 MiB a day is 1/1024 GiB-month = 0.0009765625 exactly: half up gives ...563 where
    banker's rounding would give ...562."""
    line = only(lines(usage(30, storage=30 * MIB), PRICES))
    assert line.quantity == Decimal("0.000976563")
    assert line.quantity.as_tuple().exponent == -9


def test_amount_is_rounded_half_up_to_a_cent() -> None:
    """0.5 GiB-month at 25 cents is 12.5 cents: 13, where banker's rounding would give 12."""
    line = only(lines(usage(30, storage=30 * GIB // 2), PRICES))
    assert line.quantity == Decimal("0.500000000")
    assert line.amount_cents == 13


def test_amount_is_the_rounded_quantity_times_the_price() -> None:
    """Just under half a GiB-month rounds to 0.500000000, which is what the invoice shows
    and what is priced: 13 cents (the unrounded 12.4999999992 would give 12)."""
    line = only(lines(usage(30, storage=30 * GIB // 2 - 1), PRICES))
    assert line.quantity == Decimal("0.500000000")
    assert line.amount_cents == 13


def test_rating_is_exact_beyond_a_floats_precision() -> None:
    """2^62 + 1 bytes is 4294967296.000000000931... GiB: a float would lose the last byte."""
    line = only(lines(usage(egress=2**62 + 1), PRICES))
    assert isinstance(line.quantity, Decimal)
    assert line.quantity == Decimal("4294967296.000000001")
    assert line.amount_cents == 42949672960
    assert type(line.amount_cents) is int and type(line.unit_cents) is int


def test_no_line_for_an_item_without_usage() -> None:
    assert lines(usage(), PRICES) == []
    assert [line.item for line in lines(usage(egress=1), PRICES)] == ["egress"]
    assert [line.item for line in lines(usage(storage=1, accounts=1), PRICES)] == [
        "storage", "sftp_accounts"]


def test_lines_come_in_a_fixed_order_at_their_own_prices() -> None:
    found = lines(usage(30, storage=30 * GIB, egress=GIB, accounts=30),
                  {**PRICES, "storage_gib_month_cents": 7, "egress_gib_cents": 3,
                   "sftp_account_month_cents": 11})
    assert [(line.item, line.amount_cents) for line in found] == [
        ("storage", 7), ("egress", 3), ("sftp_accounts", 11)]


def test_a_tiny_usage_may_round_to_nothing_but_keeps_its_line() -> None:
    """One byte for one day has usage (a line), rated 0.000000000 and 0 cents."""
    line = only(lines(usage(30, storage=1), PRICES))
    assert (line.quantity, line.amount_cents) == (Decimal("0E-9"), 0)


# --- re-rating an issued invoice (a real run: issuing year 2004) ----------------------------


@pytest.mark.usefixtures("stack")
def test_an_issued_invoice_re_rates_to_its_own_lines_whatever_the_prices_now() -> None:
    """The invoice stores its usage figures and the prices in force at issue: rating them
    again gives its lines back, even after the configured prices changed."""
    period = Period.parse("2004-01")
    tenant = make_tenant("Re-rated Co", created_at=utc(2003, 12, 20))
    bucket = make_bucket(tenant)
    # 10 GiB on 15 of 31 days, 1.5 GiB egress on 2 days, 2 SFTP accounts on 10 days; the
    # days just outside the period do not count.
    record_usage(tenant, bucket, date(2004, 1, 10), 15, bytes_per_day=10 * GIB, objects=3)
    record_usage(tenant, make_bucket(tenant), date(2004, 1, 3), 2,
                 egress_per_day=GIB + GIB // 2, sftp_accounts=2)
    record_usage(tenant, make_bucket(tenant), date(2004, 1, 20), 8, sftp_accounts=2)
    record_usage(tenant, bucket, date(2003, 12, 31), 1, bytes_per_day=999 * GIB,
                 egress_per_day=999 * GIB, sftp_accounts=99)
    record_usage(tenant, bucket, date(2004, 2, 1), 1, bytes_per_day=999 * GIB,
                 egress_per_day=999 * GIB, sftp_accounts=99)

    run(period, utc(2004, 2, 1, 6), Caller.system())

    issued = invoice_of(tenant, period)
    assert issued.usage == {"days": 31, "storage_byte_days": 150 * GIB,
                            "egress_bytes": 3 * GIB, "sftp_account_days": 20}
    assert issued.prices == PRICES
    stored = [(line.item, line.description, line.quantity, line.unit_cents, line.amount_cents)
              for line in issued.lines]
    assert stored == [
        ("storage", "Storage (GiB-months)", Decimal("4.838709677"), 25, 121),
        ("egress", "Egress through share links (GiB)", Decimal("3.000000000"), 10, 30),
        ("sftp_accounts", "SFTP accounts (account-months)", Decimal("0.645161290"), 500, 323),
    ]
    assert issued.total_cents == 121 + 30 + 323
    assert [line.position for line in issued.lines] == [1, 2, 3]

    def rerated() -> list[tuple[str, str, Decimal, int, int]]:
        return [(line.item, line.description, line.quantity, line.unit_cents,
                 line.amount_cents) for line in lines(issued.usage, issued.prices)]

    with settings_env(PRICE_STORAGE_GIB_MONTH_CENTS="99", PRICE_EGRESS_GIB_CENTS="1"):
        assert prices_from(get_settings()) != issued.prices
        assert rerated() == stored
