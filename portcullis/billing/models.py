"""Billing's tables. An issued invoice is immutable but for its status and payments: a
trigger (migration 0008) refuses everything else, for every role, the owner included."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portcullis.db.base import Base, created_at, uuid_pk

ISSUING_XACT = text("(pg_current_xact_id()::text)::bigint")


class BillingProfile(Base):
    """Who a tenant's invoices are addressed to; one per tenant."""

    __tablename__ = "billing_profiles"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    legal_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    tax_id_type: Mapped[str] = mapped_column(String(8))
    tax_id: Mapped[str | None] = mapped_column(String(14))
    address: Mapped[dict[str, Any]] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = created_at()


class StorageUsage(Base):
    """One bucket's stored bytes and objects (clean files) as recorded for one day.

    No foreign key on the bucket: the history outlives a deleted bucket."""

    __tablename__ = "storage_usage_daily"
    __table_args__ = (
        UniqueConstraint("bucket_id", "day", name="uq_storage_usage_daily_bucket_day"),
        Index("ix_storage_usage_daily_tenant_day", "tenant_id", "day"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    bucket_id: Mapped[uuid.UUID]
    day: Mapped[date] = mapped_column(Date)
    bytes: Mapped[int] = mapped_column(BigInteger)
    objects: Mapped[int] = mapped_column(BigInteger)


class TenantUsage(Base):
    """A tenant's SFTP accounts on one day; its rows also mark the days already recorded."""

    __tablename__ = "tenant_usage_daily"
    __table_args__ = (
        UniqueConstraint("tenant_id", "day", name="uq_tenant_usage_daily_tenant_day"),
        Index("ix_tenant_usage_daily_day", "day"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    day: Mapped[date] = mapped_column(Date)
    sftp_accounts: Mapped[int] = mapped_column(Integer)


class InvoiceStatus(StrEnum):
    open = "open"
    paid = "paid"
    overdue = "overdue"
    void = "void"


# API.md's transitions; the database's trigger holds the same table.
TRANSITIONS: dict[str, frozenset[str]] = {
    InvoiceStatus.open: frozenset({InvoiceStatus.paid, InvoiceStatus.overdue,
                                   InvoiceStatus.void}),
    InvoiceStatus.overdue: frozenset({InvoiceStatus.paid, InvoiceStatus.void}),
    InvoiceStatus.paid: frozenset(),
    InvoiceStatus.void: frozenset(),
}


class InvoiceCounter(Base):
    """The last number issued in a year: locked by each issuing transaction, so numbers
    are gapless (a sequence would leave a gap on every rollback)."""

    __tablename__ = "invoice_counters"

    year: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer)


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "period", name="uq_invoices_tenant_period"),
        # What lines and payments reference, so theirs can never name another tenant.
        UniqueConstraint("id", "tenant_id", name="uq_invoices_id_tenant"),
        CheckConstraint("status IN ('open', 'paid', 'overdue', 'void')", name="status_known"),
        CheckConstraint("total_cents >= 0 AND paid_cents >= 0 AND paid_cents <= total_cents",
                        name="paid_within_total"),
        Index("ix_invoices_tenant_issued", "tenant_id", "issued_at", "id"),
        Index("ix_invoices_unsettled_due", "due_at",
              postgresql_where="status IN ('open', 'overdue')"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    number: Mapped[str] = mapped_column(String(16), unique=True)
    period: Mapped[str] = mapped_column(String(7))
    currency: Mapped[str] = mapped_column(String(3))
    total_cents: Mapped[int] = mapped_column(BigInteger)
    issued_at: Mapped[datetime]
    due_at: Mapped[datetime]
    # What the lines were computed from, so the invoice can be re-rated and checked:
    # {days, storage_byte_days, egress_bytes, sftp_account_days} and the unit prices.
    usage: Mapped[dict[str, Any]] = mapped_column(JSONB)
    prices: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # The billing profile (and tenant name) as they stood at issue; the PDF shows this.
    billed_to: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # The transaction that issued it, set by the database (a trigger overrides any value
    # given): its lines may be written in that transaction only.
    issued_xact: Mapped[int] = mapped_column(BigInteger, server_default=ISSUING_XACT)
    # What may change after issue (the trigger's list):
    status: Mapped[str] = mapped_column(String(8))
    paid_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_at: Mapped[datetime | None]
    voided_at: Mapped[datetime | None]
    void_reason: Mapped[str | None] = mapped_column(String(500))

    lines: Mapped[list[InvoiceLine]] = relationship(
        order_by="InvoiceLine.position", lazy="selectin",
        primaryjoin="and_(Invoice.id == foreign(InvoiceLine.invoice_id), "
                    "Invoice.tenant_id == foreign(InvoiceLine.tenant_id))")


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (
        UniqueConstraint("invoice_id", "position", name="uq_invoice_lines_position"),
        ForeignKeyConstraint(["invoice_id", "tenant_id"], ["invoices.id", "invoices.tenant_id"],
                             name="fk_invoice_lines_invoice_tenant"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    invoice_id: Mapped[uuid.UUID]
    position: Mapped[int] = mapped_column(SmallInteger)
    item: Mapped[str] = mapped_column(String(16))  # storage | egress | sftp_accounts
    description: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[Decimal] = mapped_column(Numeric(28, 9))
    unit_cents: Mapped[int] = mapped_column(BigInteger)
    amount_cents: Mapped[int] = mapped_column(BigInteger)


class Payment(Base):
    """A payment recorded by an operator; its reference makes recording it idempotent."""

    __tablename__ = "invoice_payments"
    __table_args__ = (
        UniqueConstraint("invoice_id", "reference", name="uq_invoice_payments_reference"),
        ForeignKeyConstraint(["invoice_id", "tenant_id"], ["invoices.id", "invoices.tenant_id"],
                             name="fk_invoice_payments_invoice_tenant"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    invoice_id: Mapped[uuid.UUID]
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = created_at()


class BillingRun(Base):
    """A period whose monthly run finished: the daily catch-up skips it."""

    __tablename__ = "billing_runs"

    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    finished_at: Mapped[datetime] = created_at()
    invoices: Mapped[int] = mapped_column(Integer)
