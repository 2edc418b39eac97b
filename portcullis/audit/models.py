"""Audit events: INSERT and SELECT only for the application roles, chained per tenant."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from portcullis.db.base import Base, uuid_pk


class Severity(StrEnum):
    info = "info"
    notice = "notice"
    warning = "warning"
    critical = "critical"


# Code-defined vocabulary: exports write these columns into JSON and CSV unescaped.
IDENTIFIER = "'^[a-z][a-z0-9_.]*$'"


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint(f"action ~ {IDENTIFIER}", name="action_identifier"),
        CheckConstraint("severity IN ('info', 'notice', 'warning', 'critical')",
                        name="severity_known"),
        CheckConstraint(f"actor_type ~ {IDENTIFIER}", name="actor_type_identifier"),
        CheckConstraint(f"target_type ~ {IDENTIFIER}", name="target_type_identifier"),
        UniqueConstraint("tenant_id", "seq", name="uq_audit_events_tenant_seq"),
        Index("ix_audit_events_tenant_time", "tenant_id", "occurred_at", "id"),
        Index("ix_audit_events_tenant_action_time", "tenant_id", "action", "occurred_at", "id"),
        Index("ix_audit_events_tenant_actor_time", "tenant_id", "actor_id", "occurred_at", "id"),
        Index("ix_audit_events_tenant_severity_time", "tenant_id", "severity", "occurred_at",
              "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenants.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    actor_type: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
