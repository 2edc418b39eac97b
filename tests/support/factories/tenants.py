"""Tenants, built directly in the database."""

from __future__ import annotations

import uuid

from portcullis.db import tenant_session
from portcullis.tenants.models import Tenant, TenantStatus


def make_tenant(name: str = "Acme", *, status: TenantStatus = TenantStatus.active) -> uuid.UUID:
    tenant_id = uuid.uuid4()
    with tenant_session(tenant_id) as db:
        db.add(Tenant(id=tenant_id, name=name, status=status.value))
    return tenant_id
