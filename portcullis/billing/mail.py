"""Billing's email source: invoice and dunning notices go to the billing profile's email,
filled at send time (no profile by then: not sent)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from portcullis.billing.models import BillingProfile, Invoice
from portcullis.db import tenant_session
from portcullis.email.service import Fill, Kind, register_source
from portcullis.tenants import service as tenants


def money(cents: int, currency: str) -> str:
    return f"{currency} {Decimal(cents) / 100:,.2f}"


class BillingNotices:
    def recipient(self, tenant_id: uuid.UUID, args: Mapping[str, Any]) -> str | None:
        with tenant_session(tenant_id) as db:
            return db.scalar(select(BillingProfile.email)
                             .where(BillingProfile.tenant_id == tenant_id))

    def fill(self, tenant_id: uuid.UUID, kind: Kind, args: Mapping[str, Any]) -> Fill | None:
        with tenant_session(tenant_id) as db:
            profile = db.get(BillingProfile, tenant_id)
            if profile is None:
                return None
            fields = {"legal_name": profile.legal_name,
                      "tenant": tenants.name_of(db, tenant_id) or profile.legal_name}
            if "invoice_id" in args:
                invoice = db.get(Invoice, uuid.UUID(args["invoice_id"]))
                if invoice is None or invoice.tenant_id != tenant_id:
                    return None
                fields |= {"number": invoice.number, "period": invoice.period,
                           "total": money(invoice.total_cents, invoice.currency),
                           "due": f"{invoice.due_at:%Y-%m-%d}"}
            return Fill(profile.email, fields)


register_source("billing", BillingNotices())
