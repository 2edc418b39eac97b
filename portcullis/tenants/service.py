"""Tenants: created at signup, made read-only (suspended) or active again by an operator.

What other domains may use of a tenant goes through here: creating one (accounts' signup),
the row lock that serialises membership changes, its name (emails), and its name and status
as a joinable read for the per-request identity check's single statement.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Subquery, select
from sqlalchemy.orm import Session

from portcullis.alerts.service import AlertType, raise_alert
from portcullis.audit.service import Severity, Target, record
from portcullis.callers import Caller
from portcullis.db import tenant_session
from portcullis.errors import NotFound
from portcullis.tenants.models import Tenant, TenantStatus

__all__ = ["TenantStatus", "TenantView", "create", "joinable", "lock", "name_of",
           "set_status"]


@dataclass(frozen=True)
class TenantView:
    id: uuid.UUID
    name: str
    status: str


def set_status(caller: Caller, tenant_id: uuid.UUID, status: TenantStatus,
               reason: str) -> TenantView:
    """Suspend (read-only) or reactivate a tenant, audited in its chain as ``caller`` (an
    operator); a suspension also raises ``alert.tenant_suspended``."""
    actor = caller.for_tenant(tenant_id)
    with tenant_session(tenant_id) as db:
        tenant = db.get(Tenant, tenant_id, with_for_update=True)
        if tenant is None:
            raise NotFound("tenant")
        if tenant.status != status.value:
            tenant.status = status.value
            action = ("tenant.suspended" if status is TenantStatus.suspended
                      else "tenant.reactivated")
            details = {"reason": reason}
            event = record(db, actor, action, Target("tenant", str(tenant_id)), details)
            if status is TenantStatus.suspended:
                raise_alert(db, tenant_id, AlertType.tenant_suspended,
                            Severity(event.severity),
                            f"Tenant {tenant.name} was suspended ({reason})", actor,
                            actor.origin.ip, details)
        return TenantView(tenant.id, tenant.name, tenant.status)


def create(db: Session, tenant_id: uuid.UUID, name: str) -> None:
    """A new, active tenant in the caller's transaction (signup)."""
    db.add(Tenant(id=tenant_id, name=name))
    db.flush()


def lock(db: Session, tenant_id: uuid.UUID) -> None:
    """Take the tenant's row lock for the rest of the caller's transaction: the lock that
    membership changes take first, always, so they never deadlock or race each other."""
    db.get(Tenant, tenant_id, with_for_update=True)


def name_of(db: Session, tenant_id: uuid.UUID) -> str | None:
    return db.scalar(select(Tenant.name).where(Tenant.id == tenant_id))


def joinable() -> Subquery:
    """Tenants' ``id``, ``name`` and ``status`` as a subquery another domain may join in a
    single statement (the identity check reads a session or key with its tenant in one
    round trip); PostgreSQL flattens it into the join."""
    return select(Tenant.id, Tenant.name, Tenant.status).subquery("tenant")
