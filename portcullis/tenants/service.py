"""Tenant status changes by operators: suspension makes a tenant read-only."""

from __future__ import annotations

import uuid

from portcullis.alerts.service import AlertType, raise_alert
from portcullis.audit.actions import severity_of
from portcullis.audit.service import Actor, AuditRecord, Origin, Target, audit_log
from portcullis.db import tenant_session
from portcullis.errors import NotFound
from portcullis.tenants.models import Tenant, TenantStatus


def set_status(tenant_id: uuid.UUID, status: TenantStatus, actor: Actor, origin: Origin,
               reason: str) -> Tenant:
    with tenant_session(tenant_id) as db:
        tenant = db.get(Tenant, tenant_id, with_for_update=True)
        if tenant is None:
            raise NotFound("tenant")
        if tenant.status == status.value:
            return tenant
        tenant.status = status.value
        action = "tenant.suspended" if status is TenantStatus.suspended else "tenant.reactivated"
        details = {"reason": reason}
        audit_log.record(db, AuditRecord(action=action, actor=actor, tenant_id=tenant_id,
                                         severity=severity_of(action),
                                         target=Target("tenant", str(tenant_id)),
                                         origin=origin, details=details))
        if status is TenantStatus.suspended:
            raise_alert(db, tenant_id, AlertType.tenant_suspended, severity_of(action),
                        f"Tenant {tenant.name} was suspended ({reason})", actor, origin.ip,
                        details)
        return tenant
