"""An invoice's lines from its usage figures and prices, exactly as API.md computes them.

Integers and ``Decimal`` only, never floats: quantities are rounded half up to 9 decimal
places, amounts half up to whole cents. The figures and prices are stored on the invoice, so
``lines(invoice.usage, invoice.prices)`` re-rates any invoice and must give its lines back.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from config import Settings

GIB = 2**30
QUANTUM = Decimal("0.000000001")  # 9 decimal places


@dataclass(frozen=True)
class Period:
    """A calendar month, ``YYYY-MM``, in UTC."""

    year: int
    month: int

    @classmethod
    def parse(cls, value: str) -> Period:
        year, month = value.split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError("period must be YYYY-MM")
        period = cls(int(year), int(month))
        if not 1 <= period.month <= 12 or period.year < 2000:
            raise ValueError("period must be YYYY-MM")
        return period

    @classmethod
    def containing(cls, moment: datetime | date) -> Period:
        return cls(moment.year, moment.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        return date(self.year, self.month, self.days)

    @property
    def starts_at(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def ends_at(self) -> datetime:
        """The first instant after the period."""
        return self.next().starts_at

    def next(self) -> Period:
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Period:
        return Period(self.year - (self.month == 1), (self.month - 2) % 12 + 1)


@dataclass(frozen=True)
class Usage:
    """A tenant's usage over one period, in the units it was recorded in."""

    days: int
    storage_byte_days: int  # the sum over the period's days of each day's recorded bytes
    egress_bytes: int
    sftp_account_days: int  # the sum over the period's days of each day's account count

    def as_json(self) -> dict[str, int]:
        return {"days": self.days, "storage_byte_days": self.storage_byte_days,
                "egress_bytes": self.egress_bytes,
                "sftp_account_days": self.sftp_account_days}


def prices_from(settings: Settings) -> dict[str, Any]:
    """The prices in force now, as stored on an invoice issued now."""
    return {"currency": settings.BILLING_CURRENCY,
            "storage_gib_month_cents": settings.PRICE_STORAGE_GIB_MONTH_CENTS,
            "egress_gib_cents": settings.PRICE_EGRESS_GIB_CENTS,
            "sftp_account_month_cents": settings.PRICE_SFTP_ACCOUNT_MONTH_CENTS}


@dataclass(frozen=True)
class Line:
    item: str
    description: str
    quantity: Decimal
    unit_cents: int
    amount_cents: int


def _line(item: str, description: str, numerator: int, denominator: int,
          unit_cents: int) -> Line:
    quantity = (Decimal(numerator) / Decimal(denominator)).quantize(QUANTUM, ROUND_HALF_UP)
    amount = (quantity * unit_cents).quantize(Decimal(1), ROUND_HALF_UP)
    return Line(item, description, quantity, unit_cents, int(amount))


def lines(usage: dict[str, int], prices: dict[str, Any]) -> list[Line]:
    """One line per priced item with usage in the period, in a fixed order."""
    days = usage["days"]
    out = []
    if usage["storage_byte_days"]:
        out.append(_line("storage", "Storage (GiB-months)", usage["storage_byte_days"],
                         days * GIB, prices["storage_gib_month_cents"]))
    if usage["egress_bytes"]:
        out.append(_line("egress", "Egress through share links (GiB)", usage["egress_bytes"],
                         GIB, prices["egress_gib_cents"]))
    if usage["sftp_account_days"]:
        out.append(_line("sftp_accounts", "SFTP accounts (account-months)",
                         usage["sftp_account_days"], days,
                         prices["sftp_account_month_cents"]))
    return out
