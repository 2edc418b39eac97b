"""Audit events, written through the audit log itself (the hash chain has one writer), with
any action, severity, actor, target and origin a test needs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from portcullis.audit.models import AuditEvent, Severity
from portcullis.audit.service import AuditRecord, Target, audit_log
from portcullis.callers import Origin
from portcullis.db import system_session, tenant_session


@dataclass(frozen=True)
class EventActor:
    """Any actor the trail can name, ids that are not UUIDs included."""

    actor_type: str
    actor_id: str | None = None


def record_event(tenant_id: uuid.UUID | None, action: str,
                 severity: Severity = Severity.info, *, actor: tuple[str, str | None] = (
                     "system", None), target: tuple[str, str] | None = None,
                 ip: str | None = None, user_agent: str | None = None,
                 details: dict[str, Any] | None = None, db: Session | None = None) -> AuditEvent:
    """One event in the tenant's chain (the system's when ``tenant_id`` is None), in ``db``'s
    transaction if given, else in its own."""
    record = AuditRecord(action=action, actor=EventActor(*actor),  # type: ignore[arg-type]
                         tenant_id=tenant_id, severity=severity,
                         target=Target(*target) if target else None,
                         origin=Origin(ip, user_agent), details=details or {})
    if db is not None:
        return audit_log.record(db, record)
    with tenant_session(tenant_id) if tenant_id else system_session() as session:
        return audit_log.record(session, record)
