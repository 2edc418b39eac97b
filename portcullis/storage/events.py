"""Record a storage event in the tenant's audit chain with the caller's actor and origin."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from portcullis.audit.actions import severity_of
from portcullis.audit.service import Actor, AuditRecord, Origin, Target, audit_log


def record(db: Session, tenant_id: uuid.UUID, action: str, actor: Actor, origin: Origin,
           target: Target, details: dict[str, Any] | None = None) -> None:
    audit_log.record(db, AuditRecord(action=action, actor=actor, tenant_id=tenant_id,
                                     severity=severity_of(action), target=target,
                                     origin=origin, details=details or {}))
