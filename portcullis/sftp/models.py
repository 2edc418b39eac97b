"""An SFTP account: a tenant's SFTPGo user, jailed to a key prefix, feeding one bucket."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from portcullis.db.base import Base, created_at, uuid_pk


class SftpAccountStatus(StrEnum):
    provisioning = "provisioning"
    active = "active"
    failed = "failed"
    deleting = "deleting"
    deleted = "deleted"  # kept, so the username is never given again; not listed


class SftpAccount(Base):
    __tablename__ = "sftp_accounts"

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    bucket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("buckets.id"), index=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100))
    key_prefix: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=SftpAccountStatus.provisioning)
    created_at: Mapped[datetime] = created_at()
