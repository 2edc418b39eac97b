"""Billing rows built directly in the database: profiles, recorded usage, SFTP accounts, and
a bare invoice for tests that only need one to exist.

A test of what an invoice says gets it from a real billing run
(``portcullis.billing.service.run_period``), since how it is issued is the point; a run bills
every tenant of its period, which tests of who may read an invoice must not disturb.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from portcullis.billing.models import BillingProfile, Invoice, StorageUsage, TenantUsage
from portcullis.db import system_session, tenant_session
from portcullis.sftp.models import SftpAccount
from portcullis.storage.models import EgressDaily

ADDRESS = {"line1": "Av. Paulista, 1000", "line2": "", "city": "São Paulo", "state": "SP",
           "postal_code": "01310-100", "country": "BR"}


def make_profile(tenant_id: uuid.UUID, *, legal_name: str = "Acme Ltda",
                 email: str | None = None, tax_id_type: str = "cnpj",
                 tax_id: str | None = "12ABC34501DE35",
                 address: dict[str, Any] | None = None) -> str:
    """A billing profile; returns its billing email."""
    email = email or f"billing-{tenant_id.hex[:8]}@example.com"
    with tenant_session(tenant_id) as db:
        db.add(BillingProfile(tenant_id=tenant_id, legal_name=legal_name, email=email,
                              tax_id_type=tax_id_type, tax_id=tax_id,
                              address=address or dict(ADDRESS)))
    return email


def record_usage(tenant_id: uuid.UUID, bucket_id: uuid.UUID, first: date, days: int, *,
                 bytes_per_day: int = 0, objects: int = 0, egress_per_day: int = 0,
                 sftp_accounts: int | None = None) -> None:
    """``days`` days of recorded storage (and egress, and the tenant's SFTP account count)
    from ``first``, as the daily collection and share links would have left them."""
    with system_session() as db:
        for n in range(days):
            day = first + timedelta(days=n)
            db.add(StorageUsage(tenant_id=tenant_id, bucket_id=bucket_id, day=day,
                                bytes=bytes_per_day, objects=objects))
            if egress_per_day:
                db.add(EgressDaily(tenant_id=tenant_id, bucket_id=bucket_id, day=day,
                                   bytes=egress_per_day))
            if sftp_accounts is not None:
                db.add(TenantUsage(tenant_id=tenant_id, day=day, sftp_accounts=sftp_accounts))


def make_sftp_account(tenant_id: uuid.UUID, bucket_id: uuid.UUID, *,
                      status: str = "active") -> uuid.UUID:
    account_id = uuid.uuid4()
    with tenant_session(tenant_id) as db:
        db.add(SftpAccount(id=account_id, tenant_id=tenant_id, bucket_id=bucket_id,
                           username=f"t{account_id.hex[:12]}", label="drop box",
                           key_prefix=f"sftp/{account_id.hex}/", status=status))
    return account_id


_PERIODS = itertools.count()  # months of the 11th century: no run ever bills them


def make_invoice(tenant_id: uuid.UUID) -> uuid.UUID:
    """A paid invoice of nothing (no lines) for a period of its own, as if a run had issued
    it: for routes that only need an invoice of the tenant to exist."""
    invoice_id, now, month = uuid.uuid4(), datetime.now(UTC), next(_PERIODS)
    period = f"{1000 + month // 12:04d}-{month % 12 + 1:02d}"
    with system_session() as db:
        db.add(Invoice(id=invoice_id, tenant_id=tenant_id, number=f"T-{invoice_id.hex[:14]}",
                       period=period, currency="USD", total_cents=0, issued_at=now,
                       due_at=now + timedelta(days=30), usage={}, prices={},
                       billed_to={"tenant_name": "Invoice Co"}, status="paid",
                       paid_cents=0, paid_at=now))
    return invoice_id
