"""Tenants, built directly in the database."""

from __future__ import annotations

import uuid
from datetime import datetime

from portcullis.db import tenant_session
from portcullis.tenants.models import SuspendedBy, Tenant, TenantStatus


def make_tenant(name: str = "Acme", *, status: TenantStatus = TenantStatus.active,
                created_at: datetime | None = None,
                suspended_by: SuspendedBy | None = None) -> uuid.UUID:
    """``created_at`` backdates the tenant (billing bills the tenants that existed in a
    period); a suspended tenant is the operator's unless ``suspended_by`` says otherwise."""
    tenant_id = uuid.uuid4()
    if status is TenantStatus.suspended and suspended_by is None:
        suspended_by = SuspendedBy.operator
    with tenant_session(tenant_id) as db:
        tenant = Tenant(id=tenant_id, name=name, status=status.value,
                        suspended_by=suspended_by.value if suspended_by else None)
        if created_at is not None:
            tenant.created_at = created_at
        db.add(tenant)
    return tenant_id
