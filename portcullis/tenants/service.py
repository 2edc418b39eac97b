"""Tenants: created at signup, made read-only (suspended) or active again by an operator or
by billing's overdue rule, which lifts only the suspensions it made itself.

What other domains may use of a tenant goes through here: creating one (accounts' signup),
the row lock that serialises membership changes, its name (emails), and its name and status
as a joinable read for the per-request identity check's single statement.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, Subquery, select
from sqlalchemy.orm import Session

from portcullis.alerts.service import AlertType, raise_alert
from portcullis.audit.service import Severity, Target, record
from portcullis.callers import Caller
from portcullis.db import system_session
from portcullis.errors import NotFound
from portcullis.tenants.models import SuspendedBy, Tenant, TenantStatus

__all__ = ["SuspendedBy", "TenantStatus", "TenantView", "create", "existing_before", "get",
           "is_suspended", "joinable", "list_all", "lock", "name_of",
           "reactivate_after_overdue", "set_status", "suspend_for_overdue", "suspended",
           "suspended_for_overdue"]


# FOR NO KEY UPDATE: it serialises the tenant's status and membership changes, yet lets
# other transactions insert rows that reference the tenant (their foreign-key check takes
# FOR KEY SHARE), so a writer holding the tenant's audit-chain lock never waits on it: with
# FOR UPDATE, "row lock, then chain lock" here and "chain lock, then an audit insert" there
# deadlock.
_ROW_LOCK = {"key_share": True}


@dataclass(frozen=True)
class TenantView:
    id: uuid.UUID
    name: str
    status: str


def set_status(caller: Caller, tenant_id: uuid.UUID, status: TenantStatus) -> TenantView:
    """An operator suspends (read-only) or reactivates a tenant, audited in its chain. An
    operator's suspension is one the overdue rule never lifts; reactivating lifts either."""
    actor = caller.for_tenant(tenant_id)
    # The system role: a tenant's own scope may not change its status (migration 0008).
    with system_session() as db:
        tenant = _locked(db, tenant_id)
        if status is TenantStatus.suspended:
            _suspend(db, actor, tenant, SuspendedBy.operator)
        else:
            _reactivate(db, actor, tenant, "operator")
        return TenantView(tenant.id, tenant.name, tenant.status)


def list_all() -> list[TenantView]:
    """Every tenant, oldest first (the operator CLI)."""
    with system_session() as db:
        return [TenantView(t.id, t.name, t.status)
                for t in db.scalars(select(Tenant).order_by(Tenant.created_at, Tenant.id))]


def get(tenant_id: uuid.UUID) -> TenantView:
    """One tenant (the operator CLI), else NotFound."""
    with system_session() as db:
        tenant = db.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFound("tenant")
        return TenantView(tenant.id, tenant.name, tenant.status)


def suspend_for_overdue(db: Session, actor: Caller, tenant_id: uuid.UUID) -> bool:
    """The overdue rule's suspension, in the caller's transaction; True when it suspended
    (an already suspended tenant, whoever suspended it, is left as it is)."""
    tenant = _locked(db, tenant_id)
    if tenant.status == TenantStatus.suspended:
        return False
    _suspend(db, actor.for_tenant(tenant_id), tenant, SuspendedBy.overdue)
    return True


def reactivate_after_overdue(db: Session, actor: Caller, tenant_id: uuid.UUID) -> bool:
    """Lift the overdue rule's own suspension, in the caller's transaction; True when it
    did. An operator's suspension stays."""
    tenant = _locked(db, tenant_id)
    if tenant.status != TenantStatus.suspended or tenant.suspended_by != SuspendedBy.overdue:
        return False
    _reactivate(db, actor.for_tenant(tenant_id), tenant, "paid")
    return True


def suspended() -> Select[uuid.UUID]:
    """The ids of suspended tenants (whoever suspended them), for another domain's query."""
    return select(Tenant.id).where(Tenant.status == TenantStatus.suspended)


def is_suspended(db: Session, tenant_id: uuid.UUID) -> bool:
    return db.scalar(select(Tenant.status).where(Tenant.id == tenant_id)) == (
        TenantStatus.suspended)


def suspended_for_overdue() -> Select[uuid.UUID]:
    """The ids of tenants the overdue rule suspended, for another domain's query."""
    return select(Tenant.id).where(Tenant.status == TenantStatus.suspended,
                                   Tenant.suspended_by == SuspendedBy.overdue)


def existing_before(moment: datetime) -> Select[uuid.UUID, str]:
    """``(id, name)`` of every tenant created before ``moment`` (tenants are never
    deleted), for another domain's query."""
    return select(Tenant.id, Tenant.name).where(Tenant.created_at < moment)


def _locked(db: Session, tenant_id: uuid.UUID) -> Tenant:
    tenant = db.get(Tenant, tenant_id, with_for_update=_ROW_LOCK, populate_existing=True)
    if tenant is None:
        raise NotFound("tenant")
    return tenant


def _suspend(db: Session, actor: Caller, tenant: Tenant, by: SuspendedBy) -> None:
    if tenant.status == TenantStatus.suspended and tenant.suspended_by == by:
        return
    was_suspended = tenant.status == TenantStatus.suspended
    tenant.status = TenantStatus.suspended
    tenant.suspended_by = by
    details = {"reason": by.value}
    event = record(db, actor, "tenant.suspended", Target("tenant", str(tenant.id)), details)
    if not was_suspended:  # an operator taking over the overdue rule's suspension: no alert
        raise_alert(db, tenant.id, AlertType.tenant_suspended, Severity(event.severity),
                    f"Tenant {tenant.name} was suspended ({by.value})", actor,
                    actor.origin.ip, details)


def _reactivate(db: Session, actor: Caller, tenant: Tenant, reason: str) -> None:
    if tenant.status != TenantStatus.suspended:
        return
    details = {"reason": reason, "suspended_by": tenant.suspended_by or "operator"}
    tenant.status = TenantStatus.active
    tenant.suspended_by = None
    record(db, actor, "tenant.reactivated", Target("tenant", str(tenant.id)), details)


def create(db: Session, tenant_id: uuid.UUID, name: str) -> None:
    """A new, active tenant in the caller's transaction (signup)."""
    db.add(Tenant(id=tenant_id, name=name))
    db.flush()


def lock(db: Session, tenant_id: uuid.UUID) -> None:
    """Take the tenant's row lock for the rest of the caller's transaction: the lock that
    membership changes take first, always, so they never deadlock or race each other."""
    db.get(Tenant, tenant_id, with_for_update=_ROW_LOCK)


def name_of(db: Session, tenant_id: uuid.UUID) -> str | None:
    return db.scalar(select(Tenant.name).where(Tenant.id == tenant_id))


def joinable() -> Subquery:
    """Tenants' ``id``, ``name`` and ``status`` as a subquery another domain may join in a
    single statement (the identity check reads a session or key with its tenant in one
    round trip); PostgreSQL flattens it into the join."""
    return select(Tenant.id, Tenant.name, Tenant.status).subquery("tenant")
