"""The tenant row; its id is the key of every row-level security policy."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from portcullis.db.base import Base, created_at, uuid_pk


class TenantStatus(StrEnum):
    active = "active"
    suspended = "suspended"


class SuspendedBy(StrEnum):
    """Why a tenant is suspended: only the overdue rule lifts its own suspensions."""

    operator = "operator"
    overdue = "overdue"


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=TenantStatus.active)
    suspended_by: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = created_at()
